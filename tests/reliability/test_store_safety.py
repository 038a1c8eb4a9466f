"""The database file deleted, replaced or made read-only under a running writer.

SQLite writes through the descriptors it opened whatever happens to the path, so
each of these used to go unnoticed (commits into a deleted file; the old file's
WAL applied to its replacement) or kill the daemon with SIGBUS from the -shm
mapping. Now the writer stops with one error line, exit status 1, and what it had
committed is where it can be found: in the file, or saved beside a file that left.

Tests run as root: file modes do not bind it, the immutable attribute
(`chattr +i`) does, so that is how files and directories turn read-only here.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator.errors import StorageError
from aggregator.models import FeedConfig
from aggregator.store import Store
from tests.feeds import NOW, market_items, rss
from tests.reliability.checks import integrity_problems
from tests.test_daemon import EXE, FeedServer, start, stored_keys, wait_for, write_config

NOW_FEEDS = [FeedConfig(name="desk", publisher="Desk", url="https://desk.example/rss")]


@pytest.fixture
def feeds(httpserver: HTTPServer) -> FeedServer:
    return FeedServer(httpserver)


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every daemon a test starts is gone when it ends, however it ends."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def log_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def errors(log: Path) -> list[str]:
    return [str(line["message"]) for line in log_lines(log) if line["level"] == "error"]


def committed_new(log: Path) -> int:
    """Items the daemon said it stored: each poll line is logged after its commit."""
    polls = [line["poll"] for line in log_lines(log) if "poll" in line]
    return sum(int(poll["new"]) for poll in polls if isinstance(poll, dict))


def item_count(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def wait_exit(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def rescued_path(message: str) -> Path:
    found = re.search(r"saved in (\S+)$", message)
    assert found, message
    return Path(found.group(1))


def other_database(feeds: FeedServer, workdir: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A finished aggregator database of its own (feed "other"), made by `aggregator poll`."""
    body = rss(market_items(4, start=100))
    feeds.route("/other", lambda n: Response(body, content_type="application/rss+xml"))
    workdir.mkdir()
    config = write_config(workdir / "config.toml", {"other": feeds.url("/other")})
    config.write_text(config.read_text().replace('path = "agg.db"', 'path = "other.db"'))
    done = subprocess.run([EXE, "--config", str(config), "poll"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    db = workdir / "other.db"
    keys = sorted(stored_keys(db))
    assert len(keys) == 4
    return db, keys


# -- deleted or replaced ------------------------------------------------------------


def test_database_deleted_under_the_daemon_stops_it_and_saves_what_it_held(
    feeds: FeedServer, daemons: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    feeds.growing("/news", per_request=2)
    config = write_config(tmp_path / "config.toml", {"news": feeds.url("/news")})
    db = tmp_path / "agg.db"
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    daemons.append(daemon)
    assert wait_for(lambda: committed_new(log) >= 4, 10), log.read_text()

    db.unlink()
    code = wait_exit(daemon, 10)

    # It used to log `outcome=ok new=2` into the unlinked file until SIGTERM, then
    # exit 0 with everything gone.
    assert code == 1, log.read_text()
    [message] = errors(log)
    assert f"database {db} was deleted" in message, message
    rescued = rescued_path(message)
    assert rescued.parent == tmp_path and rescued.name.startswith("agg.db.rescued-")
    assert integrity_problems(rescued) == []
    # Every commit the daemon reported is in the saved copy: nothing it stored is lost.
    assert item_count(rescued) == committed_new(log) >= 4
    assert not db.exists(), "the daemon wrote on after the file was deleted"
    # The WAL left at the path is empty: a database made there later starts clean.
    wal = tmp_path / "agg.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    again = subprocess.run([EXE, "--config", str(config), "poll"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert integrity_problems(db) == []
    assert "Traceback" not in log.read_text()


def test_database_replaced_under_the_daemon_keeps_the_new_file_intact(
    feeds: FeedServer, daemons: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    other, other_keys = other_database(feeds, tmp_path / "elsewhere")
    feeds.growing("/news", per_request=2)
    config = write_config(tmp_path / "config.toml", {"news": feeds.url("/news")})
    db = tmp_path / "agg.db"
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    daemons.append(daemon)
    assert wait_for(lambda: committed_new(log) >= 4, 10), log.read_text()

    os.replace(other, db)  # `mv other.db agg.db`
    code = wait_exit(daemon, 10)
    if code is None:
        # Today's code never notices: stop it the way an operator would, then look.
        daemon.terminate()
        daemon.wait(timeout=15)

    # No frame of the old file is left in the -wal beside the new one, where the next
    # process to open the path would read them (and checkpoint them) as its pages.
    wal = tmp_path / "agg.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
    # The replacement holds exactly what it held, whatever the daemon had pending.
    assert integrity_problems(db) == []
    assert sorted(stored_keys(db)) == other_keys
    assert code == 1, log.read_text()
    [message] = errors(log)
    assert f"database {db} was replaced by another file" in message, message
    rescued = rescued_path(message)
    assert integrity_problems(rescued) == []
    assert item_count(rescued) == committed_new(log) >= 4
    assert {feed for feed, _ in stored_keys(rescued)} == {"news"}
    assert "Traceback" not in log.read_text()


def test_a_store_refuses_every_write_once_its_file_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "agg.db"
    with Store.open(db) as store:
        store.sync_feeds(NOW_FEEDS, NOW)
        db.unlink()
        with pytest.raises(StorageError, match="was deleted") as first:
            store.sync_feeds(NOW_FEEDS, NOW)
        # Refused again, with the same words and no second copy.
        with pytest.raises(StorageError) as second:
            store.index_pending()
        assert str(second.value) == str(first.value)
        # The kind a writer stops on (a locked or full database it retries instead).
        assert type(first.value).__name__ == "DatabaseUnusableError"
    [rescued] = tmp_path.glob("agg.db.rescued-*")
    with sqlite3.connect(rescued) as conn:
        assert conn.execute("SELECT name FROM feeds").fetchall() == [("desk",)]


# -- read-only -------------------------------------------------------------------------


def chattr(flag: str, *paths: Path, recursive: bool = False) -> bool:
    argv = ["chattr", *(["-R"] if recursive else []), flag, *map(str, paths)]
    return subprocess.run(argv, capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "target",
    [
        # SQLite's mapping of the -shm file: SIGBUS (exit 135, no line) on today's code.
        "agg.db-shm",
        "agg.db-wal",
        "agg.db",
        "directory",
        # `chattr -R +i` on the store directory: all of the above at once (SIGBUS too).
        "everything",
    ],
)
def test_store_turning_read_only_under_the_daemon_stops_it_in_one_line(
    feeds: FeedServer, daemons: list[subprocess.Popen[bytes]], tmp_path: Path, target: str
) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    if not chattr("+i", store_dir):
        pytest.skip("chattr +i is not possible here")
    chattr("-i", store_dir)
    feeds.growing("/news", per_request=3)
    # One poll, then only a tick a second: the daemon is idle (not mid-write) when the
    # files change, the case the checks before each write cover; a change landing inside
    # a write can still be SIGBUS. The log stays outside the store.
    config = write_config(tmp_path / "config.toml", {"news": feeds.url("/news")}, tick='"1s"')
    text = config.read_text().replace('path = "agg.db"', 'path = "store/agg.db"')
    config.write_text(text.replace('interval = "1s"', 'interval = "1h"'))
    db = store_dir / "agg.db"
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    daemons.append(daemon)
    try:
        assert wait_for(lambda: committed_new(log) >= 3, 10), log.read_text()
        time.sleep(0.5)
        if target == "everything":
            assert chattr("+i", store_dir, recursive=True)
        elif target == "directory":
            assert chattr("+i", store_dir)
        else:
            assert chattr("+i", store_dir / target)
        code = wait_exit(daemon, 10)
    finally:
        chattr("-i", store_dir, recursive=True)
    text = log.read_text()
    assert code == 1, (code, text)
    found = errors(log)
    assert len(found) == 1, text
    message = found[0]
    assert f"cannot write to database {db}" in message and "read-only" in message, message
    shown = store_dir if target == "directory" else store_dir / target
    if target != "everything":
        assert f"{shown} is read-only" in message, message
    assert "Traceback" not in text and "Fatal Python error" not in text
    # Consistent, and nothing it reported as stored is missing.
    assert integrity_problems(db) == []
    assert item_count(db) == committed_new(log)
