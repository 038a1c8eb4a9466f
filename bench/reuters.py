"""Syndication detection on real newswire text: Reuters-21578, Distribution 1.0.

    bench/reuters.py [--limit N] [--sample K] [--seed S]

Reads ../shared/corpus/reuters21578/*.sgm (latin-1), stores every dated story with a
body as an item of one "Reuters" feed in publish order, links them through the same
Linker the poll path uses, and prints: items/s of the dedup stage, links found per
relation, how many of the pairs with byte-identical bodies (the same wire sent twice)
ended in one story, and K sampled links for a human to judge. The collection is full
of templated reports ("Fed adds reserves via customer repurchases", "X sets quarterly
dividend") that must not be linked. Exits 0 with a note when the corpus is absent.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.backfill import run_import
from aggregator.config import settings_from_mapping
from aggregator.linker import Linker
from aggregator.store import Store

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "reuters21578"
_DOC = re.compile(r'<REUTERS[^>]*NEWID="(\d+)"[^>]*>(.*?)</REUTERS>', re.S)
_DATE = re.compile(r"<DATE>\s*(\d+-\w+-\d+)\s+(\d+):(\d+):(\d+)")
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
# Paragraphs start on a new line indented by three or more spaces.
_PARAGRAPH = re.compile(r"\n\s{3,}")


def read_corpus(root: Path) -> list[tuple[int, datetime, str, str]]:
    docs = []
    for path in sorted(root.glob("reut2-*.sgm")):
        for match in _DOC.finditer(path.read_text("latin-1")):
            new_id, raw = match.groups()
            date, body = _DATE.search(raw), _BODY.search(raw)
            if not date or not body:
                continue
            day = datetime.strptime(date.group(1), "%d-%b-%Y")
            hour, minute, second = (int(x) for x in date.group(2, 3, 4))
            # A few stamps are malformed ("605:12:19"); keep the day, clamp the time.
            when = day.replace(
                hour=min(hour, 23), minute=min(minute, 59), second=min(second, 59), tzinfo=UTC
            )
            text = re.sub(r"\s*Reuter\s*$", "", html.unescape(body.group(1)).replace("\x03", ""))
            paragraphs = [" ".join(p.split()) for p in _PARAGRAPH.split(text.strip())]
            title = _TITLE.search(raw)
            docs.append(
                (
                    int(new_id),
                    when,
                    " ".join(html.unescape(title.group(1)).split()) if title else "",
                    "\n".join(p for p in paragraphs if p),
                )
            )
    docs.sort(key=lambda d: (d[1], d[0]))
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N stories")
    parser.add_argument("--sample", type=int, default=20, help="links to print for judging")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the database here instead of a temp dir")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"reuters: corpus not found at {CORPUS}; skipped")
        return 0
    docs = read_corpus(CORPUS)
    if args.limit:
        docs = docs[: args.limit]
    by_id = {d[0]: d for d in docs}

    with tempfile.TemporaryDirectory() as tmp:
        db = args.keep or Path(tmp) / "reuters.db"
        for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            stale.unlink(missing_ok=True)
        settings = settings_from_mapping(
            {
                "storage": {"path": str(db)},
                "feeds": [{"name": "reuters", "publisher": "Reuters", "url": "http://r.example/"}],
            },
            source=None,
            base_dir=Path(tmp),
        )
        now = datetime(1987, 12, 31, tzinfo=UTC)
        # Through `aggregator import`'s own path: worker processes prepare and sign
        # one batch while the writer links the previous one.
        source = Path(tmp) / "reuters.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for new_id, when, title, body in docs:
                record = {
                    "id": str(new_id),
                    "url": f"http://r.example/{new_id}",
                    "title": title,
                    "published": when.isoformat(),
                    "publisher": "Reuters",
                    "text": body,
                }
                out.write(json.dumps(record) + "\n")
        dedup_seconds = 0.0
        link_changes = Linker.link_changes

        def timed(self: Linker, *args: Any, **kwargs: Any) -> Counter[str]:
            nonlocal dedup_seconds
            linking = time.perf_counter()
            try:
                return link_changes(self, *args, **kwargs)
            finally:
                dedup_seconds += time.perf_counter() - linking

        Linker.link_changes = timed  # type: ignore[method-assign]
        with Store.open(db) as store:
            started = time.perf_counter()
            result = run_import(store, settings, source, now=now)
            total = time.perf_counter() - started
            found = result.links
            items = store.items(limit=None)
            newid = {i.id: int((i.url or "0").rsplit("/", 1)[1]) for i in items}
            stories = {newid[i.id]: i.story_id for i in items}
            links = [(newid[i.id], i) for i in items if i.parent_id is not None]
            parents = newid

    identical: dict[str, list[int]] = defaultdict(list)
    for new_id, _, _, body in docs:
        identical[body].append(new_id)
    pairs = [p for ids in identical.values() for p in itertools.combinations(ids, 2)]
    joined = sum(1 for a, b in pairs if stories[a] == stories[b])

    print("Reuters-21578, Distribution 1.0")
    print(
        f"stories {len(docs)}; dedup stage {dedup_seconds:.1f}s on the writer "
        f"({len(docs) / dedup_seconds:.0f} items/s); whole import {total:.1f}s "
        f"({len(docs) / total:.0f} items/s)"
    )
    print("relations: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))
    print(f"identical-body pairs in one story: {joined} of {len(pairs)}")
    rng = random.Random(args.seed)
    for new_id, item in rng.sample(links, min(args.sample, len(links))):
        parent = by_id[parents[item.parent_id or 0]]
        child = by_id[new_id]
        print(
            f"--- {item.relation} similarity {item.similarity:.2f} "
            f"containment {item.containment:.2f} by {item.method}"
        )
        for label, doc in (("parent", parent), ("copy  ", child)):
            print(f"  {label} {doc[1]:%Y-%m-%d %H:%M} {doc[2][:70]}")
            print(f"         {doc[3][:160]!r}")
    print(
        f"reuters: items={len(docs)} import_items_per_s={len(docs) / total:.0f} "
        f"dedup_items_per_s={len(docs) / dedup_seconds:.0f} "
        f"links={len(links)} identical_pairs_linked={joined}/{len(pairs)} "
        + " ".join(f"{k}={v}" for k, v in sorted(found.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
