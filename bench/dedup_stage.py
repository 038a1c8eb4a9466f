"""Dedup stage: signatures + LSH + verdict on N generated items: items/s, peak RSS, index size.

    bench/dedup_stage.py [--items 20000] [--runs 1] [--seed 1] [--processes 0]
                         [--compare 5000] [--keep DIR]

Generates N labelled news items with bench/eval_dedup.py's generator (about 25% of
stories copied 1-3 times onto other sites), writes them as an `aggregator import` JSONL
file (id, title, url, published, publisher, text), and imports it into a fresh database
with `aggregator.backfill.run_import`, the bulk path that links items exactly as polls do.

Each run is a fresh child process (so that its peak RSS is the import's, not the
generator's), which times the whole import and, separately, the dedup stage on the
writer: the time spent in `Linker.link_changes` (LSH candidates, verdict, the writes of
signatures and links, and preparing and signing any item the worker processes did not
digest or weigh beforehand) and in `Linker.weigh_ahead` (finding the pairs of texts the
worker processes weigh beforehand), measured by wrapping those methods here. Peak RSS
and CPU seconds are reported for the measuring process and for its worker processes
(`--processes`, default one per core), with how many pairs were weighed ahead.
It reports the index's own size estimate (`CandidateIndex.memory_bytes`) per item, the
links made by relation, and pairwise precision/recall against the generator's groups.

For comparison, the first run also loads `--compare` stored signatures into datasketch's
stock `MinHashLSH` (one per signature kind, thresholds 0.3 and 0.4 as configured) and into
a fresh `CandidateIndex`, measured with tracemalloc. Prints one final line of figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from aggregator.backfill import run_import
from aggregator.config import settings_from_mapping
from aggregator.dedup.index import SCHEME, CandidateIndex
from aggregator.linker import Linker
from aggregator.models import DedupSettings, Settings
from aggregator.store import Store
from aggregator.store.times import parse_time

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_dedup import generate_labels  # bench/ is not a package

MB = 1024 * 1024


def write_jsonl(path: Path, count: int, seed: int, now: datetime) -> int:
    """The generated items as an import file; returns the number of stories with copies."""
    labels = generate_labels(count, seed, now)
    with path.open("w", encoding="utf-8") as out:
        for label in labels:
            record = {
                "id": label.id,
                "title": label.title,
                "url": label.url,
                "published": label.published.isoformat() if label.published else None,
                "publisher": label.site,
                "text": label.text,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    groups = Counter(label.group for label in labels)
    return sum(1 for n in groups.values() if n > 1)


def settings_for(db: Path, processes: int) -> Settings:
    return settings_from_mapping(
        {"storage": {"path": str(db)}, "daemon": {"processes": processes}},
        source=None,
        base_dir=db.parent,
    )


# --- one measured run (child process) -----------------------------------------------------


class DedupTimer:
    """Adds up the writer's wall time in the dedup stage and remembers the linker.

    That is `Linker.link_changes` (candidates, verdicts, the writes of signatures and
    links, and preparing any pair of texts not weighed beforehand) and
    `Linker.weigh_ahead` (finding the pairs that worker processes weigh beforehand).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.linker: Linker | None = None
        timer = self

        def timed(original: Any) -> Any:
            def wrapper(linker: Linker, *args: Any, **kwargs: Any) -> Any:
                timer.linker = linker
                started = time.perf_counter()
                try:
                    return original(linker, *args, **kwargs)
                finally:
                    timer.seconds += time.perf_counter() - started

            return wrapper

        Linker.link_changes = timed(Linker.link_changes)  # type: ignore[method-assign]
        Linker.weigh_ahead = timed(Linker.weigh_ahead)  # type: ignore[method-assign]


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def pair_metrics(db: Path) -> dict[str, float | int]:
    """Pairwise precision/recall of story links against the groups in the item ids."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT guid, story_id FROM items").fetchall()
    group_of = [guid.rsplit("-", 1)[0] for guid, _ in rows]  # ids are gSTORY-K

    def pairs(counts: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    true = pairs(Counter(group_of))
    predicted = pairs(Counter(story for _, story in rows))
    tp = pairs(Counter((group, story) for group, (_, story) in zip(group_of, rows, strict=True)))
    return {
        "precision": tp / predicted if predicted else 1.0,
        "recall": tp / true if true else 1.0,
        "fp": predicted - tp,
        "fn": true - tp,
    }


def stored_signatures(db: Path, count: int) -> list[tuple[int, bytes, bytes, datetime]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT item_id, body, lead, published FROM signatures ORDER BY item_id LIMIT ?",
            (count,),
        ).fetchall()
    return [(item_id, body, lead, parse_time(published)) for item_id, body, lead, published in rows]


def traced_growth(build: Any) -> tuple[Any, int]:
    """What `build()` returns and the bytes it left allocated, as tracemalloc counts them."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        gc.collect()
        return built, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def compare_datasketch(db: Path, dedup: DedupSettings, count: int) -> dict[str, float | int]:
    """Bytes per item of datasketch's MinHashLSH and of our index on the same signatures."""
    rows = stored_signatures(db, count)
    bodies = [
        LeanMinHash(seed=dedup.seed, hashvalues=np.frombuffer(body, "<u4"), scheme=SCHEME)
        for _, body, _, _ in rows
    ]
    leads = [
        LeanMinHash(seed=dedup.seed, hashvalues=np.frombuffer(lead, "<u4"), scheme=SCHEME)
        for _, _, lead, _ in rows
    ]
    body_lsh = MinHashLSH(threshold=dedup.body_lsh_threshold, num_perm=dedup.num_perm)
    lead_lsh = MinHashLSH(threshold=dedup.lead_lsh_threshold, num_perm=dedup.num_perm)

    def insert_all() -> None:
        for (item_id, _, _, _), body, lead in zip(rows, bodies, leads, strict=True):
            body_lsh.insert(item_id, body)
            lead_lsh.insert(item_id, lead)

    started = time.perf_counter()
    _, lsh_bytes = traced_growth(insert_all)
    lsh_seconds = time.perf_counter() - started

    def load_ours() -> CandidateIndex:
        index = CandidateIndex(dedup)
        index.load(rows)
        return index

    index, ours_bytes = traced_growth(load_ours)
    n = len(rows)
    return {
        "compare_items": n,
        "datasketch_lsh_bytes_per_item": lsh_bytes / n if n else 0.0,
        "datasketch_insert_seconds": lsh_seconds,
        "subset_index_bytes_per_item": ours_bytes / n if n else 0.0,
        "subset_index_estimate_per_item": index.memory_bytes() / n if n else 0.0,
    }


def measure(jsonl: Path, db: Path, now: datetime, processes: int, compare: int) -> dict[str, Any]:
    settings = settings_for(db, processes)
    timer = DedupTimer()
    with Store.open(db) as store:
        started = time.perf_counter()
        result = run_import(store, settings, jsonl, now=now)
        seconds = time.perf_counter() - started
    linker = timer.linker
    index = linker._index if linker is not None else None
    indexed = len(index) if index is not None else 0
    figures: dict[str, Any] = {
        "read": result.read,
        "new": result.new,
        "skipped": result.skipped,
        "first_problem": result.first_problem,
        "links": dict(result.links),
        "seconds": seconds,
        "dedup_seconds": timer.seconds,
        # ru_maxrss is in KiB on Linux. The import links on this process; children
        # would be worker processes, if any were started.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # CPU of this process (the writer, reading and dispatching) and of the worker
        # processes (digesting texts and weighing pairs), which have ended by now.
        "writer_cpu_seconds": cpu_seconds(resource.RUSAGE_SELF),
        "workers_cpu_seconds": cpu_seconds(resource.RUSAGE_CHILDREN),
        "weighings": dict(result.weighings),
        "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "indexed": indexed,
        "index_bytes_per_item": index.memory_bytes() / indexed if index and indexed else 0.0,
        "db_mb": db.stat().st_size / MB,
        **pair_metrics(db),
    }
    if compare:
        figures.update(compare_datasketch(db, settings.dedup, compare))
    return figures


# --- the driver ---------------------------------------------------------------------------


def run_child(jsonl: Path, db: Path, now: datetime, processes: int, compare: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", str(jsonl), "--db", str(db)]
    command += ["--now", now.isoformat(), "--processes", str(processes)]
    command += ["--compare", str(compare)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"measuring run failed (exit {result.returncode})")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--processes", type=int, default=0, help="[daemon] processes (0: one per core)"
    )
    parser.add_argument(
        "--compare", type=int, default=5000, help="items for the datasketch comparison (0: none)"
    )
    parser.add_argument("--keep", type=Path, help="keep items.jsonl and the last database here")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.db, args.now, args.processes, args.compare)))
        return 0

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="dedup_stage-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        jsonl = work / "items.jsonl"
        started = time.perf_counter()
        copied = write_jsonl(jsonl, args.items, args.seed, now)
        print(
            f"generated {args.items} items ({copied} stories with copies) in "
            f"{time.perf_counter() - started:.1f}s: {jsonl.stat().st_size / MB:.1f} MB of JSONL",
            flush=True,
        )
        runs = []
        for run in range(args.runs):
            db = work / "aggregator.db"
            for leftover in work.glob("aggregator.db*"):
                leftover.unlink()
            figures = run_child(jsonl, db, now, args.processes, args.compare if run == 0 else 0)
            runs.append(figures)
            print(
                f"run {run + 1}: import {figures['seconds']:.1f}s "
                f"({figures['new'] / figures['seconds']:.0f} items/s), dedup stage "
                f"{figures['dedup_seconds']:.1f}s ({figures['new'] / figures['dedup_seconds']:.0f}"
                f" items/s), peak RSS {figures['peak_rss_mb']:.0f} MB "
                f"(children {figures['children_peak_rss_mb']:.0f} MB), "
                f"database {figures['db_mb']:.0f} MB; CPU writer process "
                f"{figures['writer_cpu_seconds']:.1f}s, workers "
                f"{figures['workers_cpu_seconds']:.1f}s; pairs weighed ahead/on the writer "
                f"{figures['weighings'].get('ahead', 0)}/{figures['weighings'].get('here', 0)}",
                flush=True,
            )
    first = runs[0]
    if first["new"] != args.items or first["skipped"]:
        print(f"warning: {first['new']} of {args.items} items stored; {first['first_problem']}")
    seconds = statistics.median(r["seconds"] for r in runs)
    dedup_seconds = statistics.median(r["dedup_seconds"] for r in runs)
    peak = max(r["peak_rss_mb"] for r in runs)
    links = first["links"]
    linked = sum(n for kind, n in links.items() if kind != "original")
    print(f"links by relation: {', '.join(f'{k} {v}' for k, v in sorted(links.items()))}")
    print(
        f"precision {first['precision']:.4f}  recall {first['recall']:.4f}  "
        f"(false links {first['fp']}, misses {first['fn']}, over all pairs)"
    )
    print(
        f"index: {first['indexed']} items, {first['index_bytes_per_item']:.0f} bytes/item "
        "(CandidateIndex.memory_bytes after the import)"
    )
    if "compare_items" in first:
        print(
            f"on the first {first['compare_items']} stored signatures (tracemalloc): "
            f"datasketch MinHashLSH x2 {first['datasketch_lsh_bytes_per_item']:.0f} bytes/item "
            f"(inserted in {first['datasketch_insert_seconds']:.2f}s), CandidateIndex "
            f"{first['subset_index_bytes_per_item']:.0f} bytes/item "
            f"(its own estimate {first['subset_index_estimate_per_item']:.0f})"
        )
    print(
        f"dedup_stage: items={first['new']} runs={len(runs)} "
        f"import_items_per_s={first['new'] / seconds:.0f} "
        f"dedup_items_per_s={first['new'] / dedup_seconds:.0f} peak_rss_mb={peak:.0f} "
        f"index_bytes_per_item={first['index_bytes_per_item']:.0f} "
        f"datasketch_lsh_bytes_per_item={first.get('datasketch_lsh_bytes_per_item', 0):.0f} "
        f"links={linked} precision={first['precision']:.4f} recall={first['recall']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
