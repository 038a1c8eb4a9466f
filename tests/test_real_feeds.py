"""Real published feeds (../shared/corpus) through the whole poll path, dedup included."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
REAL = ("miniflux", "rss-parser", "feed-rs")
EXE = str(Path(sys.executable).parent / "aggregator")

if not CORPUS.is_dir():
    pytest.skip(f"feed corpus not found at {CORPUS}", allow_module_level=True)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_real_feeds_poll_link_and_search_without_errors(tmp_path: Path) -> None:
    files = sorted(
        p
        for folder in REAL
        for p in (CORPUS / folder).rglob("*")
        if p.is_file() and p.name != "LICENSE"
    )
    assert len(files) >= 50
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(CORPUS)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    lines = ['[storage]\npath = "agg.db"\n']
    for n, path in enumerate(files):
        slug = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:40] or "feed"
        url = f"{base}/{path.relative_to(CORPUS).as_posix()}"
        lines.append(
            f'[[feeds]]\nname = "f{n}-{slug}"\npublisher = "Publisher {n}"\nurl = "{url}"\n'
        )
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    try:
        polled = subprocess.run(
            [EXE, "--config", str(config), "poll", "--all", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.shutdown()
    assert polled.returncode == 0, polled.stderr[-2000:]
    assert "Traceback" not in polled.stderr
    reports = [json.loads(line) for line in polled.stdout.splitlines()]
    assert len(reports) == len(files)
    stored = sum(r["items_new"] for r in reports)
    assert stored >= 500
    # A feed may be rejected as "not a feed", but never with an unexplained failure.
    for report in reports:
        assert report["outcome"] == "ok", report
    with sqlite3.connect(tmp_path / "agg.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM signatures").fetchone()[0] >= stored * 0.9
        dangling = conn.execute(
            "SELECT count(*) FROM items WHERE story_id NOT IN (SELECT id FROM items)"
        ).fetchone()[0]
        assert dangling == 0
    for query in ("Bitcoin", "Müller", "政府", '"open source"'):
        found = subprocess.run(
            [EXE, "--config", str(config), "search", query, "--json"],
            capture_output=True,
            text=True,
        )
        assert found.returncode == 0, (query, found.stderr)
        json.loads(found.stdout)
