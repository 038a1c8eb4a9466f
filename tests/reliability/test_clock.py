"""A clock that jumped ahead and came back.

Polls made while the clock was ahead store `next_check_at` (and Retry-After
ends) far in the future; once the clock is right again every such feed looked
"not due" until then, and the daemon polled nothing and said nothing. A time
further ahead than the feed could ever wait is now pulled back to now, with a
warning, wherever due feeds are selected (daemon and `aggregator poll`).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sqlite3
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator import schedule
from aggregator.models import Feed
from aggregator.schedule import BACKOFF_CAP, next_check_at
from aggregator.store.times import format_time
from tests.test_daemon import FeedServer, documented, start, stop, wait_for, write_config

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
INTERVAL = 15 * MINUTE


def make_feed(**changes: object) -> Feed:
    feed = Feed(
        id=1,
        name="fx-desk",
        publisher="FX Desk",
        url="https://fx.example/rss",
        config_url="https://fx.example/rss",
        tags=(),
        active=True,
        in_config=True,
        etag=None,
        last_modified=None,
        error_count=0,
        last_error=None,
        last_status=200,
        last_polled_at=NOW,
        next_check_at=NOW + timedelta(minutes=15),
        retry_after_until=None,
        bozo_warning=None,
    )
    return replace(feed, **changes)  # type: ignore[arg-type]


# -- the decision (pure) ----------------------------------------------------------------


def test_longest_wait_bounds_every_time_next_check_at_can_choose() -> None:
    rng = random.Random(20261125)
    hints = [None, 0.0, 30.0, 3 * HOUR, 3 * DAY, 1e12, float("inf"), float("nan")]
    retries = [None, 0.0, 60.0, 5 * HOUR, 10 * DAY, 1e12]
    for _ in range(3000):
        interval = rng.choice([1.0, 60.0, INTERVAL, 4 * HOUR, 3 * DAY])
        errors = rng.choice([0, 1, 2, 5, 12, 70, 10**6])
        cap = timedelta(seconds=rng.choice([60.0, HOUR, BACKOFF_CAP.total_seconds(), 5 * DAY]))
        hint, retry = rng.choice(hints), rng.choice(retries)
        respect = rng.random() < 0.5
        chosen = next_check_at(
            now=NOW,
            interval=interval,
            error_count=errors,
            retry_after=retry,
            backoff_cap=cap,
            server_hint=hint if respect else None,
            jitter=rng.uniform(-1.0, 1.0),
        )
        limit = schedule.longest_wait(
            interval=interval,
            error_count=errors,
            retry_after=retry is not None,
            backoff_cap=cap,
            respect_server_hints=respect,
        )
        assert chosen - NOW <= limit, (interval, errors, cap, hint, retry, respect)


@pytest.mark.parametrize(
    ("changes", "respect_hints", "pulled"),
    [
        # Plausible schedules stand.
        ({}, True, None),
        ({"next_check_at": None}, True, None),
        ({"next_check_at": NOW + timedelta(hours=20)}, True, None),  # a <ttl> of 20 hours
        ({"error_count": 4, "next_check_at": NOW + timedelta(hours=6)}, True, None),
        (
            {
                "next_check_at": NOW + timedelta(days=2),
                "retry_after_until": NOW + timedelta(days=2),
            },
            True,
            None,
        ),
        # Without server hints a healthy feed never waits past its interval (+10% jitter).
        ({"next_check_at": NOW + timedelta(minutes=16)}, False, None),
        ({"next_check_at": NOW + timedelta(hours=2)}, False, ("now", None)),
        # Beyond any wait: written by a clock that ran ahead.
        ({"next_check_at": NOW + timedelta(days=300)}, True, ("now", None)),
        (
            {"error_count": 4, "next_check_at": NOW + timedelta(days=1)},
            True,
            None,  # a day: the server-hint cap still allows it
        ),
        (
            {"error_count": 4, "next_check_at": NOW + timedelta(days=3)},
            True,
            ("now", None),
        ),
        (
            {
                "next_check_at": NOW + timedelta(days=300),
                "retry_after_until": NOW + timedelta(days=300),
            },
            True,
            ("now", "gone"),
        ),
        # A Retry-After beyond its cap goes, and with it the allowance it gave.
        (
            {
                "next_check_at": NOW + timedelta(days=2),
                "retry_after_until": NOW + timedelta(days=30),
            },
            False,
            ("now", "gone"),
        ),
    ],
)
def test_pull_back(
    changes: dict[str, object], respect_hints: bool, pulled: tuple[str, str | None] | None
) -> None:
    feed = make_feed(**changes)
    result = schedule.pull_back(feed, NOW, interval=INTERVAL, respect_server_hints=respect_hints)
    if pulled is None:
        assert result is None
        return
    assert result is not None
    next_check, retry = pulled
    assert result.next_check_at == (NOW if next_check == "now" else feed.next_check_at)
    assert result.retry_after_until == (None if retry == "gone" else feed.retry_after_until)
    assert replace(result, next_check_at=None, retry_after_until=None) == replace(
        feed, next_check_at=None, retry_after_until=None
    )


# -- the daemon and `aggregator poll`, on a real store ---------------------------------


@pytest.fixture
def feeds(httpserver: HTTPServer) -> FeedServer:
    return FeedServer(httpserver)


def jumped_database(feeds: FeedServer, tmp_path: Path) -> Path:
    """A database as a clock 300 days ahead left it, plus two feeds honestly waiting."""
    for name in ("alpha", "beta", "gamma"):
        feeds.growing(f"/{name}", per_request=1)
    feeds.route("/broken", lambda n: Response("down", status=500))
    feeds.route("/throttled", lambda n: Response("slow down", status=429))
    names = ("alpha", "beta", "gamma", "broken", "throttled")
    config = write_config(tmp_path / "config.toml", {n: feeds.url(f"/{n}") for n in names})
    first = subprocess.run(documented("cron", config), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    now = datetime.now(UTC)
    ahead = now + timedelta(days=300)
    with sqlite3.connect(tmp_path / "agg.db") as conn:
        conn.execute(
            "UPDATE feeds SET last_polled_at = ?, next_check_at = ? "
            "WHERE name IN ('alpha', 'beta', 'gamma')",
            (format_time(ahead), format_time(ahead + timedelta(seconds=1))),
        )
        # In backoff (within the 6 hour cap) and under a Retry-After (within 2 days).
        conn.execute(
            "UPDATE feeds SET error_count = 4, next_check_at = ? WHERE name = 'broken'",
            (format_time(now + timedelta(hours=5)),),
        )
        conn.execute(
            "UPDATE feeds SET next_check_at = ?, retry_after_until = ? WHERE name = 'throttled'",
            (format_time(now + timedelta(hours=30)), format_time(now + timedelta(hours=30))),
        )
    for path in ("/alpha", "/beta", "/gamma", "/broken", "/throttled"):
        feeds.requests[path].clear()
    return config


def scheduled(db: Path) -> dict[str, datetime]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, next_check_at FROM feeds").fetchall()
    return {name: datetime.fromisoformat(value) for name, value in rows}


def test_daemon_polls_feeds_a_jumped_clock_scheduled_far_ahead_and_warns(
    feeds: FeedServer, tmp_path: Path
) -> None:
    config = jumped_database(feeds, tmp_path)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    try:
        polled = wait_for(
            lambda: all(feeds.requests[f"/{n}"] for n in ("alpha", "beta", "gamma")), 10
        )
    finally:
        code, _ = stop(daemon)
    assert polled, dict(feeds.requests)
    assert code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [line["message"] for line in lines if line["level"] == "warning"]
    [warning] = [w for w in warnings if "further than they can ever wait" in w]
    assert re.match(r"3 feeds were scheduled up to (299|300)d \d+h ahead", warning), warning
    assert all(name in warning for name in ("alpha", "beta", "gamma")), warning
    # Honest waits are kept: backoff and Retry-After are not cut short.
    assert feeds.requests["/broken"] == [] and feeds.requests["/throttled"] == []
    # And the pulled-back feeds are on their normal schedule again.
    horizon = datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert all(scheduled(tmp_path / "agg.db")[n] < horizon for n in ("alpha", "beta", "gamma"))


def test_cron_poll_polls_feeds_a_jumped_clock_scheduled_far_ahead_and_warns(
    feeds: FeedServer, tmp_path: Path
) -> None:
    config = jumped_database(feeds, tmp_path)
    result = subprocess.run(
        [*documented("cron", config)[:-1], "poll", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["feed"] for r in reports) == ["alpha", "beta", "gamma"], result.stdout
    assert re.search(r"3 feeds were scheduled up to (299|300)d", result.stderr), result.stderr
    assert "did the clock run ahead?" in result.stderr
    # Once: the next run finds nothing to pull back and nothing due.
    again = subprocess.run(documented("cron", config), capture_output=True, text=True)
    assert "further than they can ever wait" not in again.stderr
    assert "no feeds due" in again.stdout, again.stdout
    assert list(itertools.chain(feeds.requests["/broken"], feeds.requests["/throttled"])) == []
