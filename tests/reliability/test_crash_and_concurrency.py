"""The daemon killed with SIGKILL at random moments, and read by the CLI while it writes.

`make soak` (AGGREGATOR_SOAK=1) runs the long variants: 100 kills instead of
20, and the readers for a minute instead of 20 seconds.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aggregator.workers import MIN_FEEDS_FOR_PROCESSES
from tests.reliability.checks import executable_markup, integrity_problems
from tests.test_daemon import EXE, FeedServer, start, stop, stored_keys, wait_for, write_config

SOAK = bool(os.environ.get("AGGREGATOR_SOAK"))
KILLS = 100 if SOAK else 20
READ_SECONDS = 60.0 if SOAK else 20.0


@pytest.fixture
def feeds(httpserver: object) -> FeedServer:
    return FeedServer(httpserver)  # type: ignore[arg-type]


def test_sigkill_at_random_moments_never_corrupts_duplicates_or_loses(
    feeds: FeedServer, tmp_path: Path
) -> None:
    # Eight feeds: enough for the daemon to digest in worker processes, which must
    # not outlive it either.
    names = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    assert len(names) >= MIN_FEEDS_FOR_PROCESSES
    for name in names:
        feeds.growing(f"/{name}", per_request=3, words=200)
    config = write_config(tmp_path / "config.toml", {n: feeds.url(f"/{n}") for n in names})
    db = tmp_path / "agg.db"
    log = tmp_path / "daemon.log"
    rng = random.Random(20261125)
    for run in range(KILLS):
        daemon = start(config, log)
        # From "just started" (store opening, first tick) to "in the middle of linking".
        time.sleep(rng.uniform(0.0, 1.2))
        children = _children(daemon.pid)
        daemon.kill()
        daemon.wait(timeout=10)
        assert integrity_problems(db) == [], f"after kill {run}"
        assert wait_for(lambda pids=children: not [c for c in pids if _running(c)], 10), children

    with feeds.lock:
        served = {(path.strip("/"), guid) for path, guids in feeds.served.items() for guid in guids}
    assert len(served) > 3 * len(names), "the daemon was killed before it fetched anything"
    killed_runs = log.read_text()
    clean_from = len(killed_runs)
    daemon = start(config, log)
    try:
        assert wait_for(lambda: served <= set(stored_keys(db)), 20)
    finally:
        code, _ = stop(daemon)
    assert code == 0
    assert integrity_problems(db) == []
    assert served <= set(stored_keys(db))
    assert "Traceback" not in log.read_text()[clean_from:]
    # A worker process being started at the instant of a SIGKILL dies in Python's own
    # spawn bootstrap (its parent's pipe closes mid-handshake) and says so on the shared
    # stderr before our code runs. Any other traceback, or one through our code, is ours.
    ours = [
        block
        for block in _tracebacks(killed_runs)
        if "in spawn_main" not in block or "/aggregator/" in block
    ]
    assert ours == []


def test_readers_never_see_a_locked_database_while_the_daemon_writes(
    feeds: FeedServer, tmp_path: Path
) -> None:
    names = ("alpha", "beta", "gamma")
    for name in names:
        feeds.growing(f"/{name}", per_request=2, words=150)
    config = write_config(tmp_path / "config.toml", {n: feeds.url(f"/{n}") for n in names})
    db = tmp_path / "agg.db"
    daemon = start(config, tmp_path / "daemon.log")
    commands = {
        "items": ["items", "--json", "--limit", "20"],
        "search": ["search", "story", "--json"],
        "show": ["show", "1", "--json"],
        "export": [
            "export", "--format", "jsonl", "--cursor", "reader",
            "--output", str(tmp_path / "out-%Y%m%d%H%M%S.jsonl"),
        ],
    }  # fmt: skip
    runs: Counter[str] = Counter()
    failures: list[str] = []
    guard = threading.Lock()

    def loop(name: str, argv: list[str], until: float) -> None:
        while time.monotonic() < until:
            result = subprocess.run(
                [EXE, "--config", str(config), *argv], capture_output=True, text=True, timeout=60
            )
            with guard:
                runs[name] += 1
                if result.returncode != 0 or "locked" in result.stderr.lower():
                    failures.append(f"{name}: exit {result.returncode}: {result.stderr.strip()}")

    try:
        assert wait_for(lambda: len(stored_keys(db)) >= 3, 10)
        until = time.monotonic() + READ_SECONDS
        readers = [
            threading.Thread(target=loop, args=(name, argv, until))
            for name, argv in commands.items()
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        written = len(stored_keys(db))
    finally:
        code, _ = stop(daemon)
    assert code == 0
    assert failures == []
    assert all(runs[name] >= 3 for name in commands), runs
    # The daemon kept writing all along; the readers did not stall it.
    assert written > 3 * 2 * len(names)
    assert integrity_problems(db) == []
    assert executable_markup(db) == []


def _children(pid: int) -> list[int]:
    """Processes `pid` started (its worker processes), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _tracebacks(log: str) -> list[str]:
    """Each traceback in a log: from "Traceback" to the next JSON log line."""
    blocks = log.split("Traceback (most recent call last):")[1:]
    return [block.split('\n{"ts"', 1)[0] for block in blocks]
