"""Restart: time to rebuild the in-memory LSH index from the store (target: 1,000,000 in 30 s).

    bench/restart.py [--items 200000] [--seed 1] [--keep PATH]

Builds a store of N signatures inside the dedup window: the schema and the dedup
parameters through `Store`, then the `signatures` rows bulk-inserted with sqlite3 (random
uint32 hash values, 128 for the body and 128 for the lead, published over the last 10
days, and a prepared text of typical length, about 2.2 KB, since it shares the rows that
are read). No `items` rows are written (foreign keys are off on that connection): the
index is loaded from `signatures` alone.

Then, in a fresh process so nothing is cached in-process, it opens the store and loads
the index the way the first poll after a daemon start does (`Linker._ensure_index` inside
a write transaction), and reports the seconds, the items indexed, peak RSS and the
index's bytes per item. It checks that the loaded index answers: a few stored signatures
are queried and each must find its own item. The database file was just written, so it
is read from the OS page cache, not from disk. Prints one final line of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from aggregator.config import settings_from_mapping
from aggregator.dedup.index import Signature, parameters
from aggregator.linker import Linker
from aggregator.models import Settings
from aggregator.store import Store

MB = 1024 * 1024
NUM_PERM = 128
CHUNK = 20_000
SPREAD = timedelta(days=10)
CHECKS = 20


def settings_for(db: Path) -> Settings:
    return settings_from_mapping({"storage": {"path": str(db)}}, source=None, base_dir=db.parent)


def text_pool(rng: random.Random, size: int = 256) -> list[str]:
    """Prepared texts of about 2.2 KB on average, as the store keeps them."""
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(2000)
    ]
    pool = []
    for _ in range(size):
        target = rng.randint(1000, 3400)
        text = ""
        while len(text) < target:
            text += " ".join(rng.choices(words, k=rng.randint(15, 40))) + ".\n"
        pool.append(text.strip())
    return pool


def signature_rows(count: int, seed: int, now: datetime) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of the signatures table, CHUNK at a time."""
    generator = np.random.default_rng(seed)
    texts = text_pool(random.Random(seed))
    end = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "s")
    spread = int(SPREAD.total_seconds())
    for first in range(1, count + 1, CHUNK):
        n = min(CHUNK, count + 1 - first)
        values = generator.integers(0, 2**32, size=(n, 2, NUM_PERM), dtype=np.uint32)
        raw = values.astype("<u4").tobytes()
        width = NUM_PERM * 4
        ages = generator.integers(60, spread, size=n).astype("timedelta64[s]")
        published = np.datetime_as_string(end - ages, unit="s")
        rows = []
        for k in range(n):
            at = 2 * width * k
            text = texts[(first + k) % len(texts)]
            rows.append(
                (
                    first + k,
                    f"{published[k]}Z",
                    raw[at : at + width],
                    raw[at + width : at + 2 * width],
                    text,
                    text.count(" ") - 3,
                    "[]",
                )
            )
        yield rows


def build(db: Path, count: int, seed: int, now: datetime) -> float:
    """Schema, dedup parameters and `count` signatures; returns the seconds it took."""
    started = time.perf_counter()
    settings = settings_for(db)
    with Store.open(db) as store, store.transaction():
        store.set_dedup_params(parameters(settings.dedup), now)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        for rows in signature_rows(count, seed, now):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO signatures (item_id, published, body, lead, text, shingles, "
                "credits) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


# --- the measured restart (child process) -------------------------------------------------


def load(db: Path, now: datetime) -> dict[str, Any]:
    started = time.perf_counter()
    store = Store.open(db)
    opened = time.perf_counter()
    linker = Linker(store, settings_for(db))
    with store.transaction():
        index = linker._ensure_index(now)
    loaded = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    indexed = len(index)
    figures: dict[str, Any] = {
        "open_seconds": opened - started,
        "load_seconds": loaded - started,
        "indexed": indexed,
        "peak_rss_mb": peak,
        "index_bytes_per_item": index.memory_bytes() / indexed if indexed else 0.0,
    }
    # Does it answer? Each of a few stored signatures must find its own item.
    wanted = random.Random(indexed).sample(range(1, indexed + 1), min(CHECKS, indexed))
    with sqlite3.connect(db) as conn:
        sample = conn.execute(
            "SELECT item_id, body, lead FROM signatures WHERE item_id IN "
            f"({','.join('?' * len(wanted))})",
            wanted,
        ).fetchall()
    started = time.perf_counter()
    missing = [i for i, body, lead in sample if i not in index.query(Signature(body, lead))]
    figures["query_ms"] = (time.perf_counter() - started) * 1000 / max(len(sample), 1)
    figures["checked"] = len(sample)
    figures["not_found"] = missing
    # Where the time goes: the same rows read again through the store (now warm).
    started = time.perf_counter()
    since = now - timedelta(seconds=settings_for(db).dedup.window)
    read = sum(1 for _ in store.iter_signatures(since))
    figures["reread_seconds"] = time.perf_counter() - started
    figures["reread_rows"] = read
    store.close()
    return figures


def run_child(db: Path, now: datetime) -> dict[str, Any]:
    command = [sys.executable, __file__, "--load", str(db), "--now", now.isoformat()]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"loading process failed (exit {result.returncode})")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - started
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the database here and keep it")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        print(json.dumps(load(args.load, args.now)))
        return 0

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="restart-") as tmp:
        db = args.keep or Path(tmp) / "restart.db"
        if db.exists():
            parser.error(f"--keep {db}: already exists")
        seconds = build(db, args.items, args.seed, now)
        size = sum(f.stat().st_size for f in db.parent.glob(f"{db.name}*"))
        print(
            f"built {args.items} signatures in {seconds:.1f}s ({size / MB:.0f} MB of database)",
            flush=True,
        )
        figures = run_child(db, now)
    print(
        f"restart: opened the store in {figures['open_seconds']:.2f}s, index of "
        f"{figures['indexed']} items loaded {figures['load_seconds']:.1f}s after start "
        f"({figures['indexed'] / figures['load_seconds']:.0f} items/s); whole process "
        f"{figures['process_seconds']:.1f}s with Python start-up and imports"
    )
    print(
        f"reading the same rows again through Store.iter_signatures (warm): "
        f"{figures['reread_seconds']:.1f}s"
    )
    print(
        f"peak RSS {figures['peak_rss_mb']:.0f} MB; index {figures['index_bytes_per_item']:.0f} "
        f"bytes/item (CandidateIndex.memory_bytes)"
    )
    print(
        f"{figures['checked'] - len(figures['not_found'])} of {figures['checked']} stored "
        f"signatures found themselves ({figures['query_ms']:.2f} ms per query)"
    )
    status = 0
    if figures["indexed"] != args.items:
        print(f"error: {figures['indexed']} of {args.items} signatures indexed", file=sys.stderr)
        status = 1
    if figures["not_found"]:
        print(f"error: items not found by their own signature: {figures['not_found']}")
        status = 1
    print(
        f"restart: items={args.items} load_seconds={figures['load_seconds']:.2f} "
        f"indexed={figures['indexed']} peak_rss_mb={figures['peak_rss_mb']:.0f} "
        f"index_bytes_per_item={figures['index_bytes_per_item']:.0f}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
