"""Pure: a feed's new state and next poll time after one fetch.

Nothing here reads the clock or touches I/O; `now` and the settings come in
as arguments so every rule is a plain table-driven unit test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aggregator.models import Feed, FeedUpdate, FetchOutcome, FetchResult, ParsedFeed

BACKOFF_CAP = timedelta(hours=6)
RETRY_AFTER_CAP = timedelta(days=2)


def next_check_at(
    *,
    now: datetime,
    interval: float,
    error_count: int,
    retry_after: float | None = None,
    backoff_cap: timedelta = BACKOFF_CAP,
) -> datetime:
    """When to poll next: the interval, doubled per consecutive error up to a cap.

    The cap never shortens the feed's own interval, and a server's Retry-After
    (capped at two days) is a lower bound. A failing feed is never dropped.
    """
    # Arithmetic in float seconds: capping before building a timedelta keeps huge
    # error counts and absurd Retry-After values from overflowing it.
    delay = interval
    if error_count > 0:
        ceiling = max(backoff_cap.total_seconds(), interval)
        delay = min(interval * 2.0 ** min(error_count - 1, 64), ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP.total_seconds()))
    return now + timedelta(seconds=delay)


def decide_feed_update(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    parse_error: str | None,
    *,
    interval: float,
    now: datetime,
) -> FeedUpdate:
    """Turn (stored feed, what this poll saw, now) into the feed's next state."""
    outcome = fetched.outcome
    succeeded = not outcome.is_error and parse_error is None
    error = parse_error if outcome is FetchOutcome.OK else fetched.error
    error_count = 0 if succeeded else feed.error_count + 1

    etag, last_modified = feed.etag, feed.last_modified
    if outcome is FetchOutcome.OK and parse_error is None:
        # The validators describe the body we just stored, so they replace the old ones.
        etag, last_modified = fetched.etag, fetched.last_modified
    elif outcome is FetchOutcome.NOT_MODIFIED:
        etag = fetched.etag or etag
        last_modified = fetched.last_modified or last_modified
    elif outcome is FetchOutcome.OK:
        # An unparseable body must be fetched in full next time, not answered with 304.
        etag, last_modified = None, None

    bozo_warning = feed.bozo_warning
    if parsed is not None:
        bozo_warning = parsed.warning

    retry_after_until = None
    if fetched.retry_after is not None:
        retry_after_until = now + timedelta(
            seconds=min(fetched.retry_after, RETRY_AFTER_CAP.total_seconds())
        )

    return FeedUpdate(
        url=fetched.permanent_url or feed.url,
        active=outcome is not FetchOutcome.GONE,
        etag=etag,
        last_modified=last_modified,
        error_count=error_count,
        last_error=None if succeeded else (error or outcome.value),
        last_status=fetched.status,
        next_check_at=next_check_at(
            now=now,
            interval=interval,
            error_count=error_count,
            retry_after=fetched.retry_after,
        ),
        retry_after_until=retry_after_until,
        bozo_warning=bozo_warning,
        site_url=(parsed.link if parsed is not None and parsed.link else None) or feed.site_url,
    )
