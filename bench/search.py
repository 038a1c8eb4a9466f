"""Search latency on a large store: median and p95 of `search` over N generated items.

    bench/search.py [--items 200000] [--queries 200] [--keep PATH]

Generates N news-like items (a few hundred invented words plus real financial vocabulary,
tickers and figures) into a fresh database through the store's normal write path (the
search index filled in batches as writers do; no dedup, which is not what is measured),
then times `Store.search`
for random one-word, two-word, phrase and filtered queries, and the full `aggregator
search` command for a few of them. Prints one final line of figures.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.config import settings_from_mapping
from aggregator.models import ParsedEntry
from aggregator.store import ItemFilter, Store

FINANCE = (
    "bitcoin ether copper gold crude yields dollar euro yen payrolls inflation earnings "
    "guidance merger tariff rate cut hike central bank treasury bond equity futures "
    "volatility liquidity stablecoin exchange regulator lawsuit dividend buyback outlook "
    "rare earth magnets semiconductor refinery shipping freight container lithium nickel"
).split()


TICKERS = ("AAPL", "BTC", "EUR/USD", "XAU/USD", "NVDA")


def vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ra", "ten", "vo", "su", "pel", "dri", "an", "or", "ex"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def entry(n: int, rng: random.Random, words: list[str], start: datetime) -> ParsedEntry:
    body = " ".join(
        rng.choice(FINANCE) if rng.random() < 0.15 else rng.choice(words)
        for _ in range(rng.randint(120, 260))
    )
    title = " ".join(rng.choice(FINANCE if rng.random() < 0.4 else words) for _ in range(8))
    return ParsedEntry(
        key=f"item-{n}",
        guid=f"item-{n}",
        url=f"https://desk{n % 50}.example/{n}",
        canonical_url=f"https://desk{n % 50}.example/{n}",
        title=title,
        author=None,
        published=start + timedelta(seconds=n * 7),
        published_from_feed=True,
        updated=None,
        summary_html="",
        summary_text=body[:400],
        content_html="",
        content_text=body,
        categories=(),
        content_hash=hashlib.sha256(f"{n}".encode()).hexdigest(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="keep the generated database here")
    args = parser.parse_args()
    rng = random.Random(7)
    words = vocabulary(rng, 3000)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.keep or Path(tmp) / "search.db"
        feeds = [
            {"name": f"desk{n}", "publisher": f"Desk {n}", "url": f"https://desk{n}.example/rss"}
            for n in range(50)
        ]
        settings = settings_from_mapping(
            {"storage": {"path": str(db)}, "feeds": feeds}, source=None, base_dir=Path(tmp)
        )
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with Store.open(db) as store:
            store.sync_feeds(settings.feeds, start)
            by_name = {f.name: f for f in store.feeds()}
            began = time.perf_counter()
            for batch in range(0, args.items, 5000):
                with store.transaction():
                    for desk in range(50):
                        chunk = [
                            entry(n, rng, words, start)
                            for n in range(batch + desk, min(batch + 5000, args.items), 50)
                        ]
                        changes = store.upsert_entries(by_name[f"desk{desk}"], chunk, start)
                        for change in changes:
                            store.set_tickers(change.item_id, (rng.choice(TICKERS),))
                store.index_if_many()
            store.index_pending()
            load = time.perf_counter() - began
            queries = []
            for _ in range(args.queries):
                kind = rng.random()
                if kind < 0.3:
                    queries.append((rng.choice(FINANCE), ItemFilter()))
                elif kind < 0.6:
                    queries.append((f"{rng.choice(FINANCE)} {rng.choice(words)}", ItemFilter()))
                elif kind < 0.8:
                    queries.append((f'"{rng.choice(FINANCE)} {rng.choice(FINANCE)}"', ItemFilter()))
                else:
                    queries.append(
                        (
                            rng.choice(FINANCE),
                            ItemFilter(
                                since=start + timedelta(days=rng.randint(0, 10)),
                                tickers=("BTC",),
                            ),
                        )
                    )
            timings = []
            answered = 0
            for query, filters in queries:
                began = time.perf_counter()
                answered += bool(store.search(query, filters, 20))
                timings.append((time.perf_counter() - began) * 1000)
        timings.sort()
        median = statistics.median(timings)
        p95 = timings[int(len(timings) * 0.95) - 1]
        cli = []
        for query in ("copper", '"rate cut"', "bitcoin stablecoin"):
            began = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "aggregator"), "--db", str(db), "search", query],
                capture_output=True,
                check=True,
            )
            cli.append((time.perf_counter() - began) * 1000)
    print(f"loaded {args.items} items in {load:.1f}s ({args.items / load:.0f} items/s)")
    print(
        f"Store.search over {len(timings)} queries ({answered} found something): "
        f"median {median:.1f} ms, p95 {p95:.1f} ms"
    )
    print(
        f"`aggregator search` end to end (process start included): {statistics.median(cli):.0f} ms"
    )
    print(
        f"search: items={args.items} queries={len(timings)} answered={answered} "
        f"median_ms={median:.1f} "
        f"p95_ms={p95:.1f} cli_median_ms={statistics.median(cli):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
