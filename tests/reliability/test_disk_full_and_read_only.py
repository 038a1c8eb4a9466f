"""A poll that cannot write: it changes nothing and says so in one line, exit 1.

Tests run as root, for whom file modes do not forbid writing. Disk full is a
file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG
instead of killing the process); read-only is the immutable attribute
(`chattr +i`), which binds root too, or else the CLI dropped to user nobody.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.feeds import market_items, rss
from tests.reliability import faultserver as fs
from tests.reliability.checks import integrity_problems

EXE = str(Path(sys.executable).parent / "aggregator")


@pytest.fixture
def server() -> Iterator[fs.FaultServer]:
    served = fs.FaultServer()
    yield served
    served.close()


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("feeds", "items", "fetches", "item_links")
            if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
        }


def first_poll(server: fs.FaultServer, workdir: Path) -> Path:
    """A database holding one poll; the feed then grows by 40 long entries."""
    server.route("/feed", fs.body(rss(market_items(3))))
    config = workdir / "config.toml"
    config.write_text(
        f'[storage]\npath = "agg.db"\n[[feeds]]\nname = "desk"\npublisher = "Desk"\n'
        f'url = "{server.url("/feed")}"\n',
        encoding="utf-8",
    )
    done = subprocess.run([EXE, "--config", str(config), "poll"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bigger = market_items(43)
    for entry in bigger[3:]:
        entry["body"] = "<p>" + " ".join(f"{entry['guid']}w{k}" for k in range(2000)) + "</p>"
    server.route("/feed", fs.body(rss(bigger)))
    return config


def poll_failing(
    config: Path, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "--config", str(config), "poll", "--all"],
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        timeout=60,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert any(word in lines[0] for word in words), lines[0]


def test_disk_full_poll_records_nothing_and_fails_in_one_line(
    server: fs.FaultServer, tmp_path: Path
) -> None:
    config = first_poll(server, tmp_path)
    db = tmp_path / "agg.db"
    before = snapshot(db)
    limit = db.stat().st_size + 16_384

    def disk_nearly_full() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = poll_failing(config, disk_nearly_full)
    assert_one_clear_line(result, "full", "disk I/O error")
    assert str(db) in result.stderr
    assert integrity_problems(db) == []
    assert snapshot(db) == before

    # With room again the same poll stores everything it could not before.
    again = poll_failing(config)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 43
    assert integrity_problems(db) == []


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[bool]:
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        yield made
    finally:
        if made:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def as_nobody() -> Callable[[], None] | None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None

    def drop() -> None:
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    return drop


def test_read_only_database_poll_records_nothing_and_fails_in_one_line(
    server: fs.FaultServer,
) -> None:
    # Not tmp_path: user nobody must be able to reach the folder (pytest's is 0700).
    workdir = Path(tempfile.mkdtemp(prefix="aggregator-ro-"))
    try:
        workdir.chmod(0o755)
        config = first_poll(server, workdir)
        db = workdir / "agg.db"
        before = snapshot(db)
        with immutable(db) as made:
            if made:
                result = poll_failing(config)
            else:
                drop = as_nobody()
                if drop is None or os.geteuid() != 0:
                    pytest.skip("neither chattr +i nor a switch to user nobody is possible here")
                config.chmod(0o644)
                result = poll_failing(config, drop)
        assert_one_clear_line(result, "readonly", "read-only", "unable to open", "permission")
        assert str(db) in result.stderr
        assert integrity_problems(db) == []
        assert snapshot(db) == before
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["chattr", "-i", str(workdir / "agg.db")], capture_output=True)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
