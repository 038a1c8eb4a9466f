"""Small edges of the command line, run as the real `aggregator` in a subprocess.

A reading command pointed at a database that is not there says so and creates
nothing (a typo in --db used to leave an empty store behind and answer "no items");
`status` counts the feeds the config lists, polled or not; `import` needs only --db.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cli import EXE, assert_one_line_error, closed_port, feed_block, run, write_config

READERS = {
    "items": ["items"],
    "search": ["search", "copper"],
    "show": ["show", "1"],
    "status": ["status"],
    "stories": ["stories"],
    "stats": ["stats"],
    "export": ["export", "--format", "jsonl", "--output", "-"],
    "serve": ["serve", "--port", "0"],
    "report": ["report", "--output", "report.html"],
}


def _archive(path: Path, titles: list[str]) -> Path:
    lines = [
        json.dumps(
            {
                "title": title,
                "url": f"https://wire.example/{n}",
                "published": f"2026-03-0{n % 9 + 1}T09:00:00Z",
                "publisher": "Wire",
                "text": f"{title}. Story number {n} in the archive, told in its own words.",
            }
        )
        for n, title in enumerate(titles)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("command", list(READERS), ids=str)
def test_a_reader_given_a_missing_database_says_so_and_creates_nothing(
    command: str, tmp_path: Path
) -> None:
    # The parent folder does not exist either: nothing may create it.
    missing = tmp_path / "typo" / "agg.db"
    # A `serve` that started a server would never exit: run()'s own timeout fails it.
    result = run("--db", str(missing), *READERS[command], cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert str(missing) in line and "does not exist" in line
    assert not (tmp_path / "typo").exists()
    assert _left_behind(tmp_path) == []
    if command == "serve":
        assert "Serving" not in result.stdout  # refused before any socket listened


def test_a_reader_whose_config_names_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        feed_block("one", "https://wire.example/rss"),
        storage='path = "state/agg.db"',
    )
    for argv in (["items"], ["status", "--json"], ["search", "copper"]):
        line = assert_one_line_error(run("--config", str(config), *argv, cwd=tmp_path), 1)
        assert "does not exist" in line
    assert not (tmp_path / "state").exists()


def test_feeds_without_a_database_lists_the_config_and_creates_nothing(tmp_path: Path) -> None:
    # `feeds` is how a new config is checked before the first poll, so it still
    # answers, from the config, and says on stderr that nothing was polled.
    config = write_config(
        tmp_path / "config.toml",
        feed_block("fx-desk", "https://fx.example/rss", "FX Desk")
        + feed_block("coins", "https://coins.example/feed", "Coin Wire"),
    )
    missing = tmp_path / "typo" / "agg.db"
    result = run("--config", str(config), "--db", str(missing), "feeds", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(missing) in line and "does not exist" in line
    listed = {f["name"]: f for f in json.loads(result.stdout)}
    assert sorted(listed) == ["coins", "fx-desk"]
    assert {f["status"] for f in listed.values()} == {"never polled"}
    assert listed["fx-desk"]["publisher"] == "FX Desk"
    assert not (tmp_path / "typo").exists()
    assert _left_behind(tmp_path) == ["config.toml"]


def test_writers_still_create_the_database(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "archive.jsonl", ["Copper smelter output falls"])
    config = write_config(
        tmp_path / "config.toml", feed_block("down", f"http://127.0.0.1:{closed_port()}/feed")
    )
    writers = {
        "poll": ["--config", str(config), "--db", "{db}", "poll"],
        "import": ["--db", "{db}", "import", str(archive)],
        "dedup": ["--config", str(config), "--db", "{db}", "dedup", "--rebuild"],
    }
    for name, argv in writers.items():
        db = tmp_path / name / "agg.db"
        result = run(*(a.replace("{db}", str(db)) for a in argv), cwd=tmp_path)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert db.is_file(), name


def test_the_daemon_still_creates_the_database(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml", feed_block("down", f"http://127.0.0.1:{closed_port()}/feed")
    )
    db = tmp_path / "daemon" / "agg.db"
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    log = tmp_path / "daemon.log"
    with open(log, "wb") as sink:
        daemon = subprocess.Popen(
            [EXE, "--config", str(config), "--db", str(db), "run"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while not db.is_file() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.is_file(), log.read_text(encoding="utf-8")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def test_status_counts_the_feeds_the_config_lists(tmp_path: Path) -> None:
    names = [f"desk-{n:02d}" for n in range(14)]
    down = f"http://127.0.0.1:{closed_port()}/feed"
    config = write_config(
        tmp_path / "config.toml", "".join(feed_block(name, f"{down}/{name}") for name in names)
    )
    # A store made by `import`, which never reads the feed list: no feed is in it yet.
    archive = _archive(tmp_path / "archive.jsonl", ["Copper smelter output falls"])
    assert run("--config", str(config), "import", str(archive), cwd=tmp_path).returncode == 0

    shown = run("--config", str(config), "status", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "feeds: 14 configured, 14 due now" in shown.stdout
    status = json.loads(run("--config", str(config), "status", "--json", cwd=tmp_path).stdout)
    assert (status["feeds"], status["feeds_due"]) == (14, 14)

    # One feed polled (it fails and backs off): still 14 configured, 13 due.
    polled = run("--config", str(config), "poll", "--feed", names[0], cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    status = json.loads(run("--config", str(config), "status", "--json", cwd=tmp_path).stdout)
    assert (status["feeds"], status["feeds_due"]) == (14, 13)
    assert [f["name"] for f in status["feeds_in_backoff"]] == [names[0]]


def test_import_needs_only_db(tmp_path: Path) -> None:
    # No --config, no $AGGREGATOR_CONFIG, no ./config.toml: the default settings.
    archive = _archive(
        tmp_path / "archive.jsonl", ["Copper smelter output falls", "Zinc stocks rise"]
    )
    db = tmp_path / "agg.db"
    result = run("--db", str(db), "import", str(archive), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 new items" in result.stdout
    items = json.loads(run("--db", str(db), "items", "--json", cwd=tmp_path).stdout)
    assert sorted(i["title"] for i in items) == ["Copper smelter output falls", "Zinc stocks rise"]
    # A config that is named must still exist.
    line = assert_one_line_error(
        run("--config", str(tmp_path / "none.toml"), "--db", str(db), "import", str(archive),
            cwd=tmp_path),
        2,
    )  # fmt: skip
    assert "none.toml" in line and "not found" in line


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_feeds_import_keeps_the_config_files_mode(tmp_path: Path, mode: int) -> None:
    # A config may hold a feed's password: rewriting it under the umask made a 0600
    # file 0644, readable by every local user.
    source = write_config(tmp_path / "a.toml", feed_block("fx-desk", "https://fx.example/rss"))
    opml = tmp_path / "feeds.opml"
    exported = run("--config", str(source), "feeds", "export", cwd=tmp_path)
    opml.write_text(exported.stdout, encoding="utf-8")
    target = write_config(tmp_path / "b.toml", feed_block("coins", "https://coins.example/f"))
    target.chmod(mode)
    imported = run("--config", str(target), "feeds", "import", str(opml), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "1 feeds added" in imported.stdout
    assert target.stat().st_mode & 0o777 == mode
    assert not list(tmp_path.glob(".b.toml*"))
