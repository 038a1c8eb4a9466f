"""Exports through the real CLI: incremental cursors, atomic writes, valid feeds, search."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.feeds import market_items, rss

EXE = str(Path(sys.executable).parent / "aggregator")
REPO = Path(__file__).resolve().parents[1]


class Desk:
    """One loopback feed whose entries the test controls, and a config pointing at it."""

    def __init__(self, httpserver: HTTPServer, tmp_path: Path) -> None:
        self.items = market_items(4)
        self.tmp = tmp_path
        httpserver.expect_request("/feed").respond_with_handler(
            lambda request: Response(rss(self.items), content_type="application/rss+xml")
        )
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            '[storage]\npath = "agg.db"\n\n[[feeds]]\nname = "metals"\n'
            f'publisher = "Metals Desk"\nurl = "{httpserver.url_for("/feed")}"\n'
            'tags = ["commodities"]\n',
            encoding="utf-8",
        )

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
        )

    def poll(self) -> None:
        result = self.cli("poll", "--all")
        assert result.returncode == 0, result.stderr


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def desk(httpserver: HTTPServer, tmp_path: Path) -> Desk:
    return Desk(httpserver, tmp_path)


def test_cursor_exports_exactly_what_a_poll_added(desk: Desk) -> None:
    desk.poll()
    first = desk.tmp / "out" / "first.jsonl"
    result = desk.cli("export", "--format", "jsonl", "--output", str(first), "--cursor", "hourly")
    assert result.returncode == 0, result.stderr
    assert len(lines(first)) == 4

    desk.items = market_items(7)
    desk.poll()
    second = desk.tmp / "out" / "second.jsonl"
    desk.cli("export", "--format", "jsonl", "--output", str(second), "--cursor", "hourly")
    exported = lines(second)
    assert sorted(str(r["title"]) for r in exported) == [
        f"Copper edges higher on day {n}" for n in (4, 5, 6)
    ]
    for record in exported:
        assert {"story_id", "parent_id", "relation", "similarity", "lag_seconds"} <= set(record)
        assert {"publisher", "feed", "tickers"} <= set(record)
        assert record["publisher"] == "Metals Desk"

    nothing = desk.cli("export", "--format", "jsonl", "--output", str(desk.tmp / "x.jsonl"),
                       "--cursor", "hourly")  # fmt: skip
    assert nothing.returncode == 0
    assert "nothing new" in nothing.stderr
    assert not (desk.tmp / "x.jsonl").exists()


def test_killing_the_export_before_the_rename_leaves_the_cursor(desk: Desk) -> None:
    desk.poll()
    base = desk.tmp / "base.jsonl"
    desk.cli("export", "--format", "jsonl", "--output", str(base), "--cursor", "c")
    desk.items = market_items(6)
    desk.poll()

    target = desk.tmp / "news-%Y%m%d.jsonl"
    process = subprocess.Popen(
        [EXE, "--config", str(desk.config), "export", "--format", "jsonl",
         "--output", str(target), "--cursor", "c"],
        env={**os.environ, "AGGREGATOR_EXPORT_PAUSE_BEFORE_RENAME": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not list(desk.tmp.glob(".news-*.jsonl.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    temporary = list(desk.tmp.glob(".news-*.jsonl.*"))
    assert temporary, "the export never wrote its temporary file"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert not list(desk.tmp.glob("news-*.jsonl"))
    with sqlite3.connect(desk.tmp / "agg.db") as conn:
        seq = conn.execute("SELECT seq FROM cursors WHERE name = 'c'").fetchone()[0]
        newest = conn.execute("SELECT max(change_seq) FROM items").fetchone()[0]
    assert seq < newest

    retry = desk.cli("export", "--format", "jsonl", "--output", str(target), "--cursor", "c")
    assert retry.returncode == 0, retry.stderr
    (written,) = list(desk.tmp.glob("news-*.jsonl"))
    assert sorted(str(r["title"]) for r in lines(written)) == [
        "Copper edges higher on day 4",
        "Copper edges higher on day 5",
    ]


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_atom_and_rss_exports_are_valid_feeds(desk: Desk, fmt: str) -> None:
    desk.poll()
    path = desk.tmp / f"stories.{fmt}"
    assert desk.cli("export", "--format", fmt, "--output", str(path)).returncode == 0
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == ("atom10" if fmt == "atom" else "rss20")
    ids = [entry.id for entry in parsed.entries]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(entry.link.startswith("https://news.example/") for entry in parsed.entries)


def test_demo_story_exports_its_copies_as_related_links(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert (
        subprocess.run([EXE, "--db", str(db), "demo"], cwd=REPO, capture_output=True).returncode
        == 0
    )
    path = tmp_path / "stories.atom"
    result = subprocess.run(
        [EXE, "--db", str(db), "export", "--format", "atom", "--output", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0
    related = [
        [link.href for link in entry.links if link.rel == "related"] for entry in parsed.entries
    ]
    assert sum(1 for links in related if links) == 7
    collapsed = subprocess.run(
        [EXE, "--db", str(db), "export", "--format", "jsonl", "--collapse", "--output", "-",
         "--publisher", "Chainlantern", "--publisher", "Pipsight"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    records = [json.loads(line) for line in collapsed.stdout.splitlines()]
    with_copies = [r for r in records if r["copies"]]
    assert len(with_copies) == 4
    assert all(r["publisher"] in ("Chainlantern", "Pipsight") for r in records)
    assert all(c["relation"] == "syndicated" for r in with_copies for c in r["copies"])


def test_search_ranks_filters_and_explains_bad_queries(desk: Desk) -> None:
    desk.poll()
    found = json.loads(desk.cli("search", "London Metal Exchange", "--json").stdout)
    assert len(found) == 4
    assert all("«" in hit["snippet"] for hit in found)
    one = json.loads(desk.cli("search", '"rose 2.2"', "--json").stdout)
    assert [hit["title"] for hit in one] == ["Copper edges higher on day 2"]
    none = desk.cli("search", "London", "--feed", "metals", "--tag", "grains", "--json")
    assert json.loads(none.stdout) == []
    # However FTS5 words its complaint, a bad query is the user's to fix.
    for query in ("copper AND (", '5" pipe', "*"):
        bad = desk.cli("search", query)
        assert bad.returncode == 2, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "FTS5" in bad.stderr
    as_csv = desk.cli("search", "copper", "--csv", "--limit", "2").stdout
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert len(rows) == 2 and rows[0]["publisher"] == "Metals Desk"
    jsonl = desk.cli("items", "--jsonl", "--limit", "0").stdout.splitlines()
    assert len(jsonl) == 4


def test_stats_on_the_demo(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert (
        subprocess.run([EXE, "--db", str(db), "demo"], cwd=REPO, capture_output=True).returncode
        == 0
    )
    result = subprocess.run(
        [EXE, "--db", str(db), "stats", "--since", "2026-11-01", "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    pairs = {(m["source"], m["copier"]): m for m in stats["matrix"]}
    assert pairs[("Chainlantern", "Tradevane")]["copies"] == 2
    assert pairs[("Pipsight", "Tradevane")]["copies"] == 2
    assert pairs[("Meridian Wire", "Tidewater Ledger")]["median_lag_seconds"] == 45 * 60
    assert sum(p["items"] for p in stats["publishers"]) == 37
    assert len(stats["top_stories"]) == 7
    table = subprocess.run(
        [EXE, "--db", str(db), "stats", "--since", "2026-11-01"], capture_output=True, text=True
    ).stdout
    assert "Chainlantern" in table and "who copies whom" in table
