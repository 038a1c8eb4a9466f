"""The real daemon in a subprocess, started with the commands docs/deploy.md gives."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.feeds import rfc822, rss

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "aggregator")
DEPLOY = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def documented(kind: str, config: Path) -> list[str]:
    """The daemon/cron command from docs/deploy.md, pointed at this test's config."""
    if kind == "systemd":
        line = re.search(r"^ExecStart=(.+)$", DEPLOY, re.M)
        assert line, "docs/deploy.md has no ExecStart line"
        argv = shlex.split(line.group(1))
    elif kind == "cron":
        line = re.search(r"^\*/\d+ \* \* \* \* (.+?) >>", DEPLOY, re.M)
        assert line, "docs/deploy.md has no crontab line"
        argv = shlex.split(line.group(1))
    else:
        line = re.search(r"^CMD (\[.+\])$", DEPLOY, re.M)
        assert line, "docs/deploy.md has no Dockerfile CMD"
        argv = json.loads(line.group(1))
    assert Path(argv[0]).name == "aggregator"
    assert argv[1] == "--config"
    return [EXE, "--config", str(config), *argv[3:]]


class FeedServer:
    """Feeds on a loopback server that record when each path was requested."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.server = httpserver
        self.requests: dict[str, list[float]] = defaultdict(list)
        self.served: dict[str, set[str]] = defaultdict(set)
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def route(self, path: str, respond: Callable[[int], Response]) -> None:
        def handler(request: Request) -> Response:
            with self.lock:
                self.requests[path].append(time.monotonic())
                count = len(self.requests[path])
            return respond(count)

        self.server.expect_request(path).respond_with_handler(handler)

    def growing(self, path: str, per_request: int, words: int = 120) -> None:
        """A feed that gains `per_request` entries on every request; no validators."""

        def respond(count: int) -> Response:
            items = []
            start = datetime(2026, 11, 20, tzinfo=UTC)
            for n in range(count * per_request):
                guid = f"{path.strip('/')}-{n}"
                items.append(
                    {
                        "guid": guid,
                        "title": f"{path} story {n}",
                        "link": f"https://desk.example{path}/{n}",
                        "date": rfc822(start + timedelta(minutes=n)),
                        "body": f"<p>{guid} " + " ".join(f"w{n}x{k}" for k in range(words)),
                    }
                )
            with self.lock:
                self.served[path].update(item["guid"] for item in items)
            return Response(rss(items), content_type="application/rss+xml")

        self.route(path, respond)


def write_config(path: Path, feeds: dict[str, str], **daemon: str) -> Path:
    settings = {"tick": '"0.2s"', "shutdown_timeout": '"5s"', **daemon}
    lines = [
        "[storage]",
        'path = "agg.db"',
        "[polling]",
        'interval = "1s"',
        'timeout = "3s"',
        "[daemon]",
        *(f"{key} = {value}" for key, value in settings.items()),
    ]
    for name, url in feeds.items():
        lines += [
            "[[feeds]]",
            f'name = "{name}"',
            f'publisher = "{name.title()}"',
            f'url = "{url}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the daemon and wait until it says it is running (its signal handlers are set)."""
    before = log.read_text().count("daemon started") if log.exists() else 0
    with open(log, "ab") as sink:
        process = subprocess.Popen(
            documented("systemd", config), stdout=sink, stderr=sink, cwd=config.parent
        )
    assert wait_for(lambda: log.read_text().count("daemon started") > before, 15), log.read_text()
    return process


def stored_keys(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return conn.execute(
                "SELECT feeds.name, items.entry_key FROM items JOIN feeds ON feeds.id = feed_id"
            ).fetchall()
        except sqlite3.OperationalError:
            return []


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def feeds(httpserver: HTTPServer) -> Iterator[FeedServer]:
    yield FeedServer(httpserver)


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=timeout)
    return code, time.monotonic() - started


def test_daemon_polls_backs_off_honours_retry_after_and_stops_on_sigterm(
    feeds: FeedServer, tmp_path: Path
) -> None:
    feeds.growing("/news", per_request=1)
    feeds.route("/broken", lambda n: Response("down", status=500))
    feeds.route(
        "/throttled",
        lambda n: (
            Response("slow down", status=429, headers={"Retry-After": "3"})
            if n == 1
            else Response(rss([]), content_type="application/rss+xml")
        ),
    )
    config = write_config(
        tmp_path / "config.toml",
        {name: feeds.url(f"/{name}") for name in ("news", "broken", "throttled")},
    )
    daemon = start(config, tmp_path / "daemon.log")
    try:
        db = tmp_path / "agg.db"
        # New entries keep appearing: the feed gains one per request.
        assert wait_for(lambda: len(stored_keys(db)) >= 3, 8), stored_keys(db)
        time.sleep(7)
    finally:
        code, took = stop(daemon)
    assert code == 0
    assert took < 5
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log

    broken = feeds.requests["/broken"]
    gaps = [b - a for a, b in itertools.pairwise(broken)]
    assert len(gaps) >= 2, broken
    # Exponential backoff from a 1 s interval (jitter <= 10%): 1, 2, 4 ... seconds.
    assert all(later >= earlier for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] >= 1.7 * gaps[0], gaps

    throttled = feeds.requests["/throttled"]
    assert len(throttled) >= 2
    assert throttled[1] - throttled[0] >= 2.9, throttled

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    polls = [line["poll"] for line in lines if "poll" in line]
    assert {p["feed"] for p in polls} == {"news", "broken", "throttled"}
    assert any(p["outcome"] == "http_error" and p["status"] == 500 for p in polls)

    status = subprocess.run(
        [EXE, "--config", str(config), "status", "--json"], capture_output=True, text=True
    )
    state = json.loads(status.stdout)
    assert state["running"] is False and state["stopped_at"]
    assert {f["name"] for f in state["feeds_in_backoff"]} == {"broken"}


def test_a_second_daemon_on_the_same_database_refuses(feeds: FeedServer, tmp_path: Path) -> None:
    feeds.growing("/news", per_request=1)
    config = write_config(tmp_path / "config.toml", {"news": feeds.url("/news")})
    first = start(config, tmp_path / "first.log")
    try:
        assert wait_for(lambda: len(stored_keys(tmp_path / "agg.db")) >= 1, 8)
        second = subprocess.run(
            documented("systemd", config), capture_output=True, text=True, timeout=30
        )
        cron = subprocess.run(
            documented("cron", config), capture_output=True, text=True, timeout=30
        )
    finally:
        code, _ = stop(first)
    assert code == 0
    for refused in (second, cron):
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert f"already being polled by aggregator run (pid {first.pid}" in refused.stderr


def test_sighup_adds_a_feed_without_a_restart(feeds: FeedServer, tmp_path: Path) -> None:
    feeds.growing("/first", per_request=1)
    feeds.growing("/second", per_request=2)
    config = write_config(tmp_path / "config.toml", {"first": feeds.url("/first")})
    daemon = start(config, tmp_path / "daemon.log")
    try:
        db = tmp_path / "agg.db"
        assert wait_for(lambda: len(stored_keys(db)) >= 1, 8)
        assert feeds.requests["/second"] == []
        write_config(config, {"first": feeds.url("/first"), "second": feeds.url("/second")})
        daemon.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any(f == "second" for f, _ in stored_keys(db)), 8)
        # A broken config on reload is logged and the running one kept.
        config.write_text("[polling\n", encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert daemon.poll() is None
        requests_before = len(feeds.requests["/second"])
        assert wait_for(lambda: len(feeds.requests["/second"]) > requests_before, 5)
    finally:
        code, _ = stop(daemon)
    assert code == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "configuration reloaded" in log
    assert "new configuration not loaded" in log


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    feeds: FeedServer, tmp_path: Path
) -> None:
    for name in ("alpha", "beta", "gamma"):
        feeds.growing(f"/{name}", per_request=4, words=300)
    config = write_config(
        tmp_path / "config.toml",
        {name: feeds.url(f"/{name}") for name in ("alpha", "beta", "gamma")},
    )
    db = tmp_path / "agg.db"
    rng = random.Random(20261125)
    for run in range(6):
        daemon = start(config, tmp_path / "daemon.log")
        time.sleep(rng.uniform(0.8, 2.5))
        daemon.kill()
        daemon.wait(timeout=10)
        with sqlite3.connect(db, timeout=10) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", run
            keys = stored_keys(db)
            assert len(keys) == len(set(keys)), f"duplicates after kill {run}"
            dangling = conn.execute(
                "SELECT count(*) FROM items WHERE story_id NOT IN (SELECT id FROM items) "
                "OR (parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM items))"
            ).fetchone()[0]
            assert dangling == 0, run

    # One clean run catches up with everything the server ever served.
    with feeds.lock:
        served = {(path.strip("/"), guid) for path, guids in feeds.served.items() for guid in guids}
    daemon = start(config, tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: served <= set(stored_keys(db)), 15)
    finally:
        code, _ = stop(daemon)
    assert code == 0
    keys = stored_keys(db)
    assert len(keys) == len(set(keys))
    assert served <= set(keys)
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


def test_deploy_doc_commands_are_the_ones_tests_run(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    for kind in ("systemd", "cron", "docker"):
        argv = documented(kind, config)
        assert argv[-1] in ("run", "poll")
        result = subprocess.run([*argv[:-1], argv[-1], "--help"], capture_output=True, text=True)
        assert result.returncode == 0, (kind, result.stderr)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in DEPLOY
    assert os.path.basename(documented("docker", config)[0]) == "aggregator"


class _SlowFeeds(BaseHTTPRequestHandler):
    """Every path is a small feed answered after 0.4 s; counts requests in flight."""

    active = 0
    peak = 0
    total = 0
    guard = threading.Lock()

    def do_GET(self) -> None:
        cls = type(self)
        with cls.guard:
            cls.active += 1
            cls.total += 1
            cls.peak = max(cls.peak, cls.active)
        try:
            time.sleep(0.4)
            body = rss([{"guid": self.path, "title": self.path, "date": rfc822(datetime.now(UTC))}])
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with cls.guard:
                cls.active -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_per_host_limit_and_metrics_endpoint(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFeeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    config = write_config(
        tmp_path / "config.toml",
        {f"desk{n}": f"{base}/feed{n}" for n in range(8)},
        per_host="2",
        metrics_port=str(metrics_port),
    )
    daemon = start(config, tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: _SlowFeeds.total >= 8, 15)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            exposition = r.read().decode()
    finally:
        code, _ = stop(daemon)
        server.shutdown()
    assert code == 0
    # Eight feeds on one host, two at a time at most.
    assert _SlowFeeds.peak == 2
    assert re.search(r'^aggregator_polls_total\{outcome="ok"\} [1-9]', exposition, re.M)
    assert re.search(r'^aggregator_items_total\{kind="new"\} [1-9]', exposition, re.M)
    assert "aggregator_poll_duration_seconds_bucket" in exposition


def test_cron_poll_keeps_the_per_host_limit_too(tmp_path: Path) -> None:
    _SlowFeeds.active = _SlowFeeds.peak = _SlowFeeds.total = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFeeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    config = write_config(
        tmp_path / "config.toml", {f"desk{n}": f"{base}/p{n}" for n in range(6)}, per_host="2"
    )
    try:
        result = subprocess.run(documented("cron", config), capture_output=True, text=True)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert _SlowFeeds.total == 6
    assert _SlowFeeds.peak == 2


def test_daemon_refuses_to_start_when_signatures_need_a_rebuild(
    feeds: FeedServer, tmp_path: Path
) -> None:
    feeds.growing("/news", per_request=1)
    config = write_config(tmp_path / "config.toml", {"news": feeds.url("/news")})
    polled = subprocess.run(documented("cron", config), capture_output=True, text=True)
    assert polled.returncode == 0, polled.stderr
    config.write_text(config.read_text() + "[dedup]\nnum_perm = 64\n", encoding="utf-8")
    refused = subprocess.run(
        documented("systemd", config), capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 1
    assert "dedup --rebuild" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_pool_is_refilled_between_ticks(feeds: FeedServer, tmp_path: Path) -> None:
    # A tick is a wake-up, not a rate limit: with an hour between ticks, two fetchers
    # and 24 due feeds, every feed is fetched after the first tick, each result making
    # room for the next (it was `workers` feeds per tick: 5,760 polls an hour at most).
    names = [f"desk{n}" for n in range(24)]
    for name in names:
        feeds.route(f"/{name}", lambda n: Response(rss([]), content_type="application/rss+xml"))
    config = write_config(
        tmp_path / "config.toml",
        {name: feeds.url(f"/{name}") for name in names},
        tick='"1h"',
        workers="2",
        per_host="2",
    )
    daemon = start(config, tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: all(feeds.requests[f"/{n}"] for n in names), 60), sorted(
            feeds.requests
        )
    finally:
        code, _ = stop(daemon)
    assert code == 0
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


def test_the_backlog_hands_out_host_by_host_within_the_per_host_limit() -> None:
    from collections import Counter
    from types import SimpleNamespace

    from aggregator.daemon import _Backlog

    def feed(n: int, host: str) -> Any:
        # The backlog reads a feed's URL only.
        return SimpleNamespace(id=n, url=f"https://{host}/{n}")

    backlog = _Backlog()
    backlog.reset([feed(n, "a.example") for n in range(6)] + [feed(9, "b.example")])
    busy: Counter[str] = Counter({"a.example": 1})
    taken = backlog.take(8, busy, per_host=2)
    # a.example had one in flight, so one more; b.example its one feed.
    assert sorted(host for _, host in taken) == ["a.example", "b.example"]
    assert busy == Counter({"a.example": 2, "b.example": 1})
    assert backlog.take(8, busy, per_host=2) == []
    busy["a.example"] = 0
    assert [f.id for f, _ in backlog.take(1, busy, per_host=2)] == [1]
    assert len(backlog) == 4
