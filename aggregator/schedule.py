"""Pure: a feed's new state and next poll time after one fetch.

Nothing here reads the clock or touches I/O; `now` and the settings come in
as arguments so every rule is a plain table-driven unit test.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aggregator.models import Feed, FeedUpdate, FetchOutcome, FetchResult, ParsedFeed, Settings

BACKOFF_CAP = timedelta(hours=6)
RETRY_AFTER_CAP = timedelta(days=2)
# A feed's <ttl> or Cache-Control max-age may slow polling down, but not below once a day.
SERVER_HINT_CAP = timedelta(days=1)
# Each feed's interval is stretched or shrunk by up to this share, the same way every
# time: feeds started together drift apart instead of polling in lockstep forever.
JITTER_SHARE = 0.1
# How far past its longest wait a stored time may lie before it counts as written by a
# clock that ran ahead: stored times are rounded up to the second, and a jump of less
# than a minute costs nothing worth a warning.
CLOCK_SLACK = timedelta(minutes=1)


def feed_jitter(name: str) -> float:
    """A fixed number in [-1, 1) for a feed name (stable across runs and machines)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def next_check_at(
    *,
    now: datetime,
    interval: float,
    error_count: int,
    retry_after: float | None = None,
    backoff_cap: timedelta = BACKOFF_CAP,
    server_hint: float | None = None,
    jitter: float = 0.0,
) -> datetime:
    """When to poll next.

    The interval (stretched by the feed's fixed jitter), doubled per consecutive
    error up to `backoff_cap` (never below the interval itself); the server's
    own hint (<ttl>, max-age; capped at a day) and Retry-After (capped at two
    days) are lower bounds. A failing feed is never dropped.
    """
    # Arithmetic in float seconds: capping before building a timedelta keeps huge
    # error counts and absurd server values from overflowing it.
    base = interval * (1.0 + JITTER_SHARE * max(-1.0, min(1.0, jitter)))
    delay = base
    if error_count > 0:
        ceiling = max(backoff_cap.total_seconds(), base)
        delay = min(base * 2.0 ** min(error_count - 1, 64), ceiling)
    if server_hint is not None and math.isfinite(server_hint) and server_hint > 0:
        delay = max(delay, min(server_hint, SERVER_HINT_CAP.total_seconds()))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP.total_seconds()))
    return now + timedelta(seconds=delay)


def longest_wait(
    *,
    interval: float,
    error_count: int,
    retry_after: bool,
    backoff_cap: timedelta = BACKOFF_CAP,
    respect_server_hints: bool = True,
) -> timedelta:
    """The furthest ahead next_check_at() can put a feed in this state.

    Its terms, each at their widest: the interval at full jitter; the backoff
    ceiling once the feed has failed; a day for the server's <ttl> or max-age;
    two days of Retry-After, when the feed's last answer carried one.
    """
    longest = interval * (1.0 + JITTER_SHARE)
    if error_count > 0:
        longest = max(longest, backoff_cap.total_seconds())
    if respect_server_hints:
        longest = max(longest, SERVER_HINT_CAP.total_seconds())
    if retry_after:
        longest = max(longest, RETRY_AFTER_CAP.total_seconds())
    return timedelta(seconds=longest)


def pull_back(
    feed: Feed,
    now: datetime,
    *,
    interval: float,
    backoff_cap: timedelta = BACKOFF_CAP,
    respect_server_hints: bool = True,
) -> Feed | None:
    """The feed made due now when it is scheduled further ahead than it could ever wait.

    next_check_at() never schedules past longest_wait(), nor a Retry-After past its
    cap; a stored time beyond that was written by a clock that ran ahead and came
    back (or under a longer interval than the config now gives). Left alone it
    would hold the feed until that far-off time. None when the schedule stands.
    """
    retry_limit = now + RETRY_AFTER_CAP + CLOCK_SLACK
    retry_after_until = feed.retry_after_until
    if retry_after_until is not None and retry_after_until > retry_limit:
        retry_after_until = None
    limit = (
        now
        + longest_wait(
            interval=interval,
            error_count=feed.error_count,
            retry_after=retry_after_until is not None,
            backoff_cap=backoff_cap,
            respect_server_hints=respect_server_hints,
        )
        + CLOCK_SLACK
    )
    next_check = feed.next_check_at
    if next_check is not None and next_check > limit:
        next_check = now
    if next_check == feed.next_check_at and retry_after_until == feed.retry_after_until:
        return None
    return replace(feed, next_check_at=next_check, retry_after_until=retry_after_until)


@dataclass(frozen=True, slots=True)
class WaitLimits:
    """pull_back() with the settings bound: what the store applies when it selects due feeds."""

    intervals: Mapping[str, float]
    default_interval: float
    backoff_cap: timedelta = BACKOFF_CAP
    respect_server_hints: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> WaitLimits:
        return cls(
            intervals={feed.name: feed.polling.interval for feed in settings.feeds},
            default_interval=settings.polling.interval,
            backoff_cap=timedelta(seconds=settings.daemon.backoff_cap),
            respect_server_hints=settings.daemon.respect_server_hints,
        )

    @property
    def shortest(self) -> timedelta:
        """No feed may wait less than this, whatever its state."""
        # longest_wait() grows with the interval: the shortest interval gives the bound.
        shortest = longest_wait(
            interval=min([*self.intervals.values(), self.default_interval]),
            error_count=0,
            retry_after=False,
            respect_server_hints=self.respect_server_hints,
        )
        return min(shortest, RETRY_AFTER_CAP)

    def pull_back(self, feed: Feed, now: datetime) -> Feed | None:
        return pull_back(
            feed,
            now,
            interval=self.intervals.get(feed.name, self.default_interval),
            backoff_cap=self.backoff_cap,
            respect_server_hints=self.respect_server_hints,
        )


def decide_feed_update(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    parse_error: str | None,
    *,
    interval: float,
    now: datetime,
    body_hash: str | None = None,
    backoff_cap: timedelta = BACKOFF_CAP,
    respect_server_hints: bool = True,
    jitter: float = 0.0,
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
            backoff_cap=backoff_cap,
            server_hint=_server_hint(fetched, parsed) if respect_server_hints else None,
            jitter=jitter,
        ),
        retry_after_until=retry_after_until,
        bozo_warning=bozo_warning,
        site_url=(parsed.link if parsed is not None and parsed.link else None) or feed.site_url,
        # Remembered only for a body that parsed: a broken one is parsed again next time.
        body_hash=body_hash if succeeded and outcome is FetchOutcome.OK else feed.body_hash,
    )


def _server_hint(fetched: FetchResult, parsed: ParsedFeed | None) -> float | None:
    """The longer of the feed's <ttl> and the response's max-age, if either was given."""
    hints = [h for h in (fetched.max_age, parsed.ttl if parsed else None) if h is not None]
    return max(hints) if hints else None
