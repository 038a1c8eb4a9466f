"""The real `aggregator` entry point, run in a subprocess against a temp config and DB."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from pytest_httpserver import HTTPServer

from aggregator.cli import cli
from tests.feeds import market_items, rss

REPO = Path(__file__).resolve().parents[1]
EXE = shutil.which("aggregator", path=str(Path(sys.executable).parent)) or "aggregator"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("AGGREGATOR_CONFIG",)}
    full_env.update(env or {})
    return subprocess.run(
        [EXE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def write_config(path: Path, feeds: str, storage: str = 'path = "agg.db"') -> Path:
    path.write_text(
        f'[storage]\n{storage}\n\n[polling]\ninterval = "15m"\ntimeout = "3s"\n\n{feeds}',
        encoding="utf-8",
    )
    return path


def feed_block(name: str, url: str, publisher: str = "Desk") -> str:
    return f'[[feeds]]\nname = "{name}"\npublisher = "{publisher}"\nurl = "{url}"\n\n'


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize("command", [(), *_commands(cli)], ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command: tuple[str, ...], tmp_path: Path) -> None:
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: aggregator" in result.stdout
    target = cli if not command else cli.commands[command[0]]
    assert target.help and len(target.help) > 20


def test_poll_feeds_and_items_end_to_end(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/copper").respond_with_data(
        rss(market_items(3)), content_type="application/rss+xml"
    )
    config = write_config(
        tmp_path / "config.toml",
        feed_block("metals", httpserver.url_for("/copper"), "Metals Desk")
        + feed_block("down", f"http://127.0.0.1:{closed_port()}/feed"),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    polled = run("--config", str(config), "poll", cwd=elsewhere)
    assert polled.returncode == 0, polled.stderr
    assert "metals" in polled.stdout and "down" in polled.stdout
    assert "2 feeds polled: 3 new items (0 linked to a story), 0 updated, 1 failed" in polled.stdout
    # The storage path is relative to the config file, not to the working directory.
    assert (tmp_path / "agg.db").exists()

    again = run("--config", str(config), "poll", cwd=elsewhere)
    assert again.returncode == 0
    assert "no feeds due" in again.stdout

    forced = run("--config", str(config), "poll", "--all", "--json", cwd=elsewhere)
    lines = [json.loads(line) for line in forced.stdout.splitlines()]
    assert {line["feed"]: line["items_new"] for line in lines} == {"metals": 0, "down": 0}

    feeds = json.loads(run("--config", str(config), "feeds", "--json", cwd=elsewhere).stdout)
    by_name = {feed["name"]: feed for feed in feeds}
    assert by_name["metals"]["status"] == "ok"
    assert by_name["metals"]["items"] == 3
    assert by_name["metals"]["publisher"] == "Metals Desk"
    assert by_name["down"]["status"] == "error"
    assert by_name["down"]["error_count"] == 2
    assert "connection failed" in by_name["down"]["last_error"]

    listed = run("--config", str(config), "items", "--json", "--limit", "2", cwd=elsewhere)
    items = json.loads(listed.stdout)
    assert [item["title"] for item in items] == [
        "Copper edges higher on day 2",
        "Copper edges higher on day 1",
    ]
    assert items[0]["published"] == "2026-11-03T09:02:00Z"
    assert items[0]["publisher"] == "Metals Desk"

    table = run("--db", str(tmp_path / "agg.db"), "items", "--feed", "metals", cwd=elsewhere)
    assert table.returncode == 0
    assert "Copper edges higher on day 0" in table.stdout

    old = run("--config", str(config), "items", "--since", "2026-11-02T12:00:00Z", cwd=elsewhere)
    assert "day 2" in old.stdout and "day 0" not in old.stdout


def test_config_from_environment_variable(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/feed").respond_with_data(rss(market_items(1)))
    config = write_config(tmp_path / "custom.toml", feed_block("one", httpserver.url_for("/feed")))
    result = run("poll", "--json", cwd=tmp_path, env={"AGGREGATOR_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items_new"] == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[polling]\ninterval = "soon"\n', "polling.interval"),
        ("[storage]\npath = 'x.db'\ncolour = 1\n", "storage.colour"),
        ('[[feeds]]\nname = "a"\nurl = "ftp://example.org/feed"\n', "feeds[0].url"),
        (
            '[[feeds]]\nname = "a"\nurl = "https://a.example/"\n'
            '[[feeds]]\nname = "a"\nurl = "https://b.example/"\n',
            "feeds[1].name",
        ),
        ("[polling\ninterval = 1\n", "invalid TOML"),
    ],
    ids=["duration", "unknown-key", "scheme", "duplicate", "toml"],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content, encoding="utf-8")
    result = run("--config", str(config), "poll", cwd=tmp_path)
    line = assert_one_line_error(result, 2)
    assert str(config) in line
    assert expected in line


def test_missing_config_file(tmp_path: Path) -> None:
    line = assert_one_line_error(run("feeds", cwd=tmp_path), 2)
    assert "config.toml" in line and "not found" in line


def test_bad_arguments_are_one_line_errors(httpserver: HTTPServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", feed_block("one", httpserver.url_for("/f")))
    line = assert_one_line_error(
        run("--config", str(config), "poll", "--feed", "nope", cwd=tmp_path), 2
    )
    assert "unknown feed 'nope'" in line
    line = assert_one_line_error(
        run("--config", str(config), "items", "--since", "last tuesday", cwd=tmp_path), 2
    )
    assert "--since" in line


def test_locked_database_is_a_clear_error(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/feed").respond_with_data(rss(market_items(1)))
    config = write_config(
        tmp_path / "config.toml",
        feed_block("one", httpserver.url_for("/feed")),
        storage='path = "agg.db"\nbusy_timeout = "1s"',
    )
    assert run("--config", str(config), "poll", cwd=tmp_path).returncode == 0
    holder = sqlite3.connect(tmp_path / "agg.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run("--config", str(config), "poll", "--all", cwd=tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = assert_one_line_error(result, 1)
    assert "locked" in line
    # Nothing was lost: the stored item is still there and a retry works.
    assert run("--config", str(config), "poll", "--all", cwd=tmp_path).returncode == 0
    items = json.loads(run("--config", str(config), "items", "--json", cwd=tmp_path).stdout)
    assert len(items) == 1


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database\n" * 100)
    line = assert_one_line_error(run("--db", str(bogus), "items", cwd=tmp_path), 1)
    assert str(bogus) in line
    assert bogus.read_text().startswith("these are my notes")


@pytest.mark.skipif(not (REPO / "data" / "demo" / "feeds.toml").exists(), reason="no demo feeds")
def test_demo_runs_offline_and_second_poll_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = run("--db", str(db), "demo", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Second poll: 0 new items" in result.stdout
    with sqlite3.connect(db) as conn:
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        feeds = conn.execute("SELECT count(*) FROM feeds WHERE error_count = 0").fetchone()[0]
    assert items >= 20
    assert feeds >= 6
    assert f"Stored {items} items" in result.stdout


def test_feeds_export_and_import_opml(tmp_path: Path) -> None:
    source = write_config(
        tmp_path / "a.toml",
        feed_block("fx-desk", "https://fx.example/rss", "FX Desk")
        + feed_block("coins", "https://coins.example/feed", "Coin Wire"),
    )
    exported = run("--config", str(source), "feeds", "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith('<?xml version="1.0"')
    opml = tmp_path / "feeds.opml"
    opml.write_text(exported.stdout, encoding="utf-8")

    target = write_config(
        tmp_path / "b.toml", feed_block("coins", "https://coins.example/feed", "Coin Wire")
    )
    before = target.read_text(encoding="utf-8")
    imported = run("--config", str(target), "feeds", "import", str(opml), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "+ fx-desk" in imported.stdout and "1 feeds added" in imported.stdout
    after = target.read_text(encoding="utf-8")
    assert after.startswith(before)
    listed = json.loads(run("--config", str(target), "feeds", "--json", cwd=tmp_path).stdout)
    assert sorted(f["name"] for f in listed) == ["coins", "fx-desk"]
    again = run("--config", str(target), "feeds", "import", str(opml), cwd=tmp_path)
    assert "0 feeds added" in again.stdout
    assert target.read_text(encoding="utf-8") == after

    broken = tmp_path / "broken.opml"
    broken.write_text("<opml><body><outline", encoding="utf-8")
    line = assert_one_line_error(
        run("--config", str(target), "feeds", "import", str(broken), cwd=tmp_path), 2
    )
    assert str(broken) in line
