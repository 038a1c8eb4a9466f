"""aggregator.schedule: pure next-poll and feed-state decisions against a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.models import Feed, FeedUpdate, FetchOutcome, FetchResult, ParsedFeed
from aggregator.schedule import (
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    decide_feed_update,
    feed_jitter,
    next_check_at,
)

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
        tags=("fx",),
        active=True,
        in_config=True,
        etag='"old-etag"',
        last_modified="Mon, 23 Nov 2026 10:00:00 GMT",
        error_count=0,
        last_error=None,
        last_status=200,
        last_polled_at=NOW - timedelta(minutes=15),
        next_check_at=NOW,
        retry_after_until=None,
        bozo_warning=None,
    )
    return replace(feed, **changes)  # type: ignore[arg-type]


def make_result(outcome: FetchOutcome, **fields: object) -> FetchResult:
    defaults: dict[str, object] = {
        "requested_url": "https://fx.example/rss",
        "final_url": "https://fx.example/rss",
        "outcome": outcome,
    }
    if outcome is FetchOutcome.OK:
        defaults |= {"status": 200, "body": b"<rss/>", "content_type": "application/rss+xml"}
    elif outcome is FetchOutcome.NOT_MODIFIED:
        defaults |= {"status": 304}
    return FetchResult(**(defaults | fields))  # type: ignore[arg-type]


PARSED = ParsedFeed(title="FX Desk", link="https://fx.example/", version="rss20", entries=())


def decide(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None = None,
    parse_error: str | None = None,
    *,
    interval: float = INTERVAL,
) -> FeedUpdate:
    return decide_feed_update(feed, fetched, parsed, parse_error, interval=interval, now=NOW)


# --- next_check_at ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "error_count", "delay"),
    [
        (INTERVAL, 0, INTERVAL),
        (INTERVAL, 1, INTERVAL),
        (INTERVAL, 2, 2 * INTERVAL),
        (INTERVAL, 3, 4 * INTERVAL),
        (INTERVAL, 4, 8 * INTERVAL),
        (INTERVAL, 5, 16 * INTERVAL),
        (INTERVAL, 6, 6 * HOUR),  # 32 * 15m = 8h, capped
        (INTERVAL, 7, 6 * HOUR),
        (INTERVAL, 50, 6 * HOUR),
        (INTERVAL, 10_000, 6 * HOUR),
        (30.0, 0, 30.0),
        (30.0, 3, 120.0),
        (2 * HOUR, 2, 4 * HOUR),
        (2 * HOUR, 3, 6 * HOUR),
        (2 * HOUR, 10_000, 6 * HOUR),
        (6 * HOUR, 0, 6 * HOUR),
        (6 * HOUR, 5, 6 * HOUR),
        # an interval above the cap is never shortened by it, and never doubled either
        (8 * HOUR, 0, 8 * HOUR),
        (8 * HOUR, 1, 8 * HOUR),
        (8 * HOUR, 3, 8 * HOUR),
        (8 * HOUR, 20, 8 * HOUR),
        (DAY, 2, DAY),
        (DAY, 30, DAY),
    ],
)
def test_next_check_at_backs_off(interval: float, error_count: int, delay: float) -> None:
    when = next_check_at(now=NOW, interval=interval, error_count=error_count)
    assert when == NOW + timedelta(seconds=delay)
    assert when.tzinfo is not None


@pytest.mark.parametrize("error_count", range(0, 40))
def test_next_check_at_is_monotonic_and_bounded(error_count: int) -> None:
    when = next_check_at(now=NOW, interval=INTERVAL, error_count=error_count)
    later = next_check_at(now=NOW, interval=INTERVAL, error_count=error_count + 1)
    assert NOW + timedelta(seconds=INTERVAL) <= when <= later <= NOW + BACKOFF_CAP


@pytest.mark.parametrize("error_count", [33, 64, 1_000, 10_000, 10**9])
def test_huge_error_count_does_not_overflow(error_count: int) -> None:
    when = next_check_at(now=NOW, interval=INTERVAL, error_count=error_count)
    assert when == NOW + BACKOFF_CAP


# A slow feed (interval = "1d") failing for months must stay rescheduled at the cap, never
# overflow timedelta's range.
@pytest.mark.parametrize(
    ("interval", "error_count"),
    [(6 * HOUR, 33), (8 * HOUR, 40), (DAY, 31), (DAY, 10_000), (7 * DAY, 10_000)],
)
def test_huge_error_count_with_a_long_interval_does_not_overflow(
    interval: float, error_count: int
) -> None:
    when = next_check_at(now=NOW, interval=interval, error_count=error_count)
    assert when == NOW + timedelta(seconds=interval)


def test_custom_backoff_cap() -> None:
    cap = timedelta(hours=1)
    assert next_check_at(now=NOW, interval=INTERVAL, error_count=10, backoff_cap=cap) == NOW + cap
    assert next_check_at(now=NOW, interval=INTERVAL, error_count=2, backoff_cap=cap) == (
        NOW + timedelta(minutes=30)
    )


@pytest.mark.parametrize(
    ("interval", "error_count", "retry_after", "delay"),
    [
        # Retry-After is a lower bound ...
        (INTERVAL, 0, 2 * HOUR, 2 * HOUR),
        (INTERVAL, 1, HOUR, HOUR),
        # ... that never shortens the interval or the back-off
        (INTERVAL, 0, 60.0, INTERVAL),
        (INTERVAL, 6, HOUR, 6 * HOUR),
        (DAY, 0, HOUR, DAY),
        # ... may exceed the back-off cap ...
        (INTERVAL, 10, DAY, DAY),
        # ... but is itself capped at two days
        (INTERVAL, 0, 2 * DAY, 2 * DAY),
        (INTERVAL, 0, 10 * DAY, 2 * DAY),
        (INTERVAL, 3, 1e12, 2 * DAY),
        (7 * DAY, 0, 10 * DAY, 7 * DAY),
        # zero, negative and missing values are ignored
        (INTERVAL, 0, 0.0, INTERVAL),
        (INTERVAL, 0, -300.0, INTERVAL),
        (INTERVAL, 2, None, 2 * INTERVAL),
    ],
)
def test_next_check_at_retry_after(
    interval: float, error_count: int, retry_after: float | None, delay: float
) -> None:
    when = next_check_at(
        now=NOW, interval=interval, error_count=error_count, retry_after=retry_after
    )
    assert when == NOW + timedelta(seconds=delay)


# "Retry-After: 99999999999999999" is capped at two days, not turned into an OverflowError.
@pytest.mark.parametrize("retry_after", [1e14, 1e17, float("inf")])
def test_huge_retry_after_is_capped_not_overflowing(retry_after: float) -> None:
    when = next_check_at(now=NOW, interval=INTERVAL, error_count=0, retry_after=retry_after)
    assert when == NOW + RETRY_AFTER_CAP


def test_decide_with_huge_retry_after_is_capped_not_overflowing() -> None:
    fetched = make_result(FetchOutcome.HTTP_ERROR, status=503, retry_after=1e17)
    update = decide(make_feed(), fetched)
    assert update.retry_after_until == NOW + RETRY_AFTER_CAP


def test_next_check_at_reads_no_clock() -> None:
    past = datetime(2001, 1, 1, tzinfo=UTC)
    assert next_check_at(now=past, interval=INTERVAL, error_count=0) == past + timedelta(minutes=15)


# --- decide_feed_update ----------------------------------------------------------------------


def test_ok_resets_errors_and_stores_new_validators() -> None:
    feed = make_feed(error_count=4, last_error="HTTP 500", last_status=500)
    fetched = make_result(FetchOutcome.OK, etag='"new-etag"', last_modified="Tue, 24 Nov 2026")
    update = decide(feed, fetched, PARSED)
    assert update == FeedUpdate(
        url="https://fx.example/rss",
        active=True,
        etag='"new-etag"',
        last_modified="Tue, 24 Nov 2026",
        error_count=0,
        last_error=None,
        last_status=200,
        next_check_at=NOW + timedelta(seconds=INTERVAL),
        retry_after_until=None,
        bozo_warning=None,
        site_url="https://fx.example/",
    )


def test_ok_without_validators_forgets_the_old_ones() -> None:
    update = decide(make_feed(), make_result(FetchOutcome.OK), PARSED)
    assert update.etag is None
    assert update.last_modified is None


@pytest.mark.parametrize(
    ("new_etag", "new_modified", "etag", "modified"),
    [
        (None, None, '"old-etag"', "Mon, 23 Nov 2026 10:00:00 GMT"),
        ('"v2"', None, '"v2"', "Mon, 23 Nov 2026 10:00:00 GMT"),
        (None, "Wed, 25 Nov 2026 11:00:00 GMT", '"old-etag"', "Wed, 25 Nov 2026 11:00:00 GMT"),
        ('"v2"', "Wed, 25 Nov 2026 11:00:00 GMT", '"v2"', "Wed, 25 Nov 2026 11:00:00 GMT"),
    ],
)
def test_not_modified_keeps_old_validators_unless_new_ones_given(
    new_etag: str | None, new_modified: str | None, etag: str, modified: str
) -> None:
    feed = make_feed(error_count=2, last_error="timeout")
    fetched = make_result(FetchOutcome.NOT_MODIFIED, etag=new_etag, last_modified=new_modified)
    update = decide(feed, fetched)
    assert (update.etag, update.last_modified) == (etag, modified)
    assert update.error_count == 0
    assert update.last_error is None
    assert update.last_status == 304
    assert update.active is True
    assert update.next_check_at == NOW + timedelta(seconds=INTERVAL)


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        (FetchOutcome.HTTP_ERROR, 500, "HTTP 500 Internal Server Error"),
        (FetchOutcome.HTTP_ERROR, 403, "HTTP 403 Forbidden"),
        (FetchOutcome.TIMEOUT, None, "timed out after 20s"),
        (FetchOutcome.NETWORK_ERROR, None, "DNS lookup failed"),
        (FetchOutcome.TOO_LARGE, 200, "body larger than 10000000 bytes"),
        (FetchOutcome.REFUSED, None, "refused: private address"),
    ],
)
@pytest.mark.parametrize(("old_errors", "delay"), [(0, INTERVAL), (1, 2 * INTERVAL), (9, 6 * HOUR)])
def test_fetch_error_increments_errors_and_keeps_validators(
    outcome: FetchOutcome, status: int | None, error: str, old_errors: int, delay: float
) -> None:
    feed = make_feed(error_count=old_errors, bozo_warning="old warning")
    update = decide(feed, make_result(outcome, status=status, error=error))
    assert update.error_count == old_errors + 1
    assert update.last_error == error
    assert update.last_status == status
    assert update.etag == '"old-etag"'
    assert update.last_modified == "Mon, 23 Nov 2026 10:00:00 GMT"
    assert update.active is True
    assert update.url == feed.url
    assert update.bozo_warning == "old warning"
    assert update.next_check_at == NOW + timedelta(seconds=delay)


def test_error_without_a_message_records_the_outcome() -> None:
    update = decide(make_feed(), make_result(FetchOutcome.TIMEOUT))
    assert update.last_error == "timeout"
    assert update.error_count == 1


def test_gone_deactivates_the_feed() -> None:
    update = decide(make_feed(), make_result(FetchOutcome.GONE, status=410, error="HTTP 410"))
    assert update.active is False
    assert update.error_count == 1
    assert update.last_error == "HTTP 410"
    assert update.last_status == 410


@pytest.mark.parametrize("outcome", [o for o in FetchOutcome if o is not FetchOutcome.GONE])
def test_only_gone_deactivates(outcome: FetchOutcome) -> None:
    assert decide(make_feed(), make_result(outcome, error="x"), PARSED).active is True


@pytest.mark.parametrize(
    ("outcome", "parsed"),
    [
        (FetchOutcome.OK, PARSED),
        (FetchOutcome.NOT_MODIFIED, None),
        (FetchOutcome.HTTP_ERROR, None),
    ],
)
def test_permanent_url_replaces_url(outcome: FetchOutcome, parsed: ParsedFeed | None) -> None:
    fetched = make_result(
        outcome,
        final_url="https://new.example/feed",
        permanent_url="https://new.example/feed",
        error=None if parsed else "e",
    )
    assert decide(make_feed(), fetched, parsed).url == "https://new.example/feed"


def test_temporary_redirect_keeps_url() -> None:
    fetched = make_result(FetchOutcome.OK, final_url="https://mirror.example/feed")
    assert decide(make_feed(), fetched, PARSED).url == "https://fx.example/rss"


def test_ok_with_parse_error_increments_errors_and_clears_validators() -> None:
    feed = make_feed(error_count=1, bozo_warning="old warning")
    fetched = make_result(FetchOutcome.OK, etag='"new-etag"', last_modified="Tue, 24 Nov 2026")
    update = decide(feed, fetched, None, "not a feed: no RSS or Atom document found")
    assert update.error_count == 2
    assert update.last_error == "not a feed: no RSS or Atom document found"
    assert update.etag is None
    assert update.last_modified is None
    assert update.last_status == 200
    assert update.active is True
    assert update.next_check_at == NOW + timedelta(seconds=2 * INTERVAL)


@pytest.mark.parametrize(
    ("retry_after", "until"),
    [
        (120.0, NOW + timedelta(minutes=2)),
        (DAY, NOW + timedelta(days=1)),
        (30 * DAY, NOW + RETRY_AFTER_CAP),
        (None, None),
    ],
)
def test_retry_after_sets_retry_after_until(
    retry_after: float | None, until: datetime | None
) -> None:
    fetched = make_result(FetchOutcome.HTTP_ERROR, status=429, retry_after=retry_after, error="429")
    update = decide(make_feed(), fetched)
    assert update.retry_after_until == until
    # the next check is never before the server asked us to come back
    assert update.next_check_at == max(NOW + timedelta(seconds=INTERVAL), until or NOW)


def test_retry_after_on_success_is_still_honoured() -> None:
    fetched = make_result(FetchOutcome.OK, retry_after=3 * HOUR)
    update = decide(make_feed(), fetched, PARSED)
    assert update.error_count == 0
    assert update.retry_after_until == NOW + timedelta(hours=3)
    assert update.next_check_at == NOW + timedelta(hours=3)


@pytest.mark.parametrize(
    ("old", "parsed", "expected"),
    [
        (None, replace(PARSED, warning="SAXParseException: bad"), "SAXParseException: bad"),
        ("old warning", PARSED, None),
        ("old warning", None, "old warning"),
    ],
)
def test_bozo_warning_follows_the_latest_parse(
    old: str | None, parsed: ParsedFeed | None, expected: str | None
) -> None:
    outcome = FetchOutcome.OK if parsed else FetchOutcome.NOT_MODIFIED
    update = decide(make_feed(bozo_warning=old), make_result(outcome), parsed)
    assert update.bozo_warning == expected


def test_interval_argument_drives_the_next_check() -> None:
    update = decide(make_feed(), make_result(FetchOutcome.OK), PARSED, interval=HOUR)
    assert update.next_check_at == NOW + timedelta(hours=1)


def test_decide_feed_update_does_not_change_the_feed() -> None:
    feed = make_feed(error_count=3)
    before = replace(feed)
    decide(feed, make_result(FetchOutcome.HTTP_ERROR, error="boom"))
    assert feed == before


# --- jitter, server hints and the configurable cap (daemon issue) --------------------------


@pytest.mark.parametrize(
    ("kwargs", "delay"),
    [
        ({"interval": 600, "error_count": 0, "jitter": 1.0}, 660),
        ({"interval": 600, "error_count": 0, "jitter": -1.0}, 540),
        ({"interval": 600, "error_count": 0, "jitter": 5.0}, 660),
        ({"interval": 600, "error_count": 0, "server_hint": 3600}, 3600),
        ({"interval": 600, "error_count": 0, "server_hint": 60}, 600),
        ({"interval": 600, "error_count": 0, "server_hint": 10**9}, 86400),
        ({"interval": 600, "error_count": 0, "server_hint": float("inf")}, 600),
        ({"interval": 600, "error_count": 3, "backoff_cap": timedelta(minutes=30)}, 1800),
        ({"interval": 600, "error_count": 2, "backoff_cap": timedelta(minutes=30)}, 1200),
        ({"interval": 600, "error_count": 9, "retry_after": 7200}, 6 * 3600),
        ({"interval": 600, "error_count": 1, "retry_after": 7200}, 7200),
        ({"interval": 600, "error_count": 1, "server_hint": 900, "retry_after": 30}, 900),
    ],
)
def test_next_check_at_jitter_hints_and_cap(kwargs: dict[str, object], delay: float) -> None:
    assert next_check_at(now=NOW, **kwargs) == NOW + timedelta(seconds=delay)  # type: ignore[arg-type]


def test_feed_jitter_is_stable_and_spread() -> None:
    names = [f"feed-{n}" for n in range(2000)]
    values = [feed_jitter(name) for name in names]
    assert values == [feed_jitter(name) for name in names]
    assert all(-1.0 <= v < 1.0 for v in values)
    # Spread over the whole range: every tenth of it holds some feeds.
    assert len({int((v + 1) * 5) for v in values}) == 10


@pytest.mark.parametrize("respect", [True, False])
def test_decide_uses_ttl_and_max_age_only_when_asked(respect: bool) -> None:
    feed = make_feed()
    fetched = replace(make_result(FetchOutcome.OK), max_age=1200.0)
    parsed = replace(PARSED, ttl=3000.0)
    update = decide_feed_update(
        feed, fetched, parsed, None, interval=600, now=NOW, respect_server_hints=respect
    )
    assert update.next_check_at == NOW + timedelta(seconds=3000 if respect else 600)
