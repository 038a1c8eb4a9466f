"""One poll, end to end: due feeds -> fetch -> parse -> decide -> store.

Only fetching runs concurrently (a thread pool); parsing and storing happen
on the calling thread, so SQLite has a single writer and each feed's results
are one transaction. `aggregator poll` and the daemon both come through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from aggregator.errors import ParseError, UsageError
from aggregator.fetch import Fetcher
from aggregator.linker import Linker
from aggregator.models import (
    ChangeStatus,
    Feed,
    FetchOutcome,
    FetchRequest,
    FetchResult,
    ParsedFeed,
    PollingSettings,
    PollReport,
    Relation,
    Settings,
)
from aggregator.parse import parse_feed
from aggregator.schedule import WaitLimits, decide_feed_update, feed_jitter
from aggregator.store import Store
from aggregator.workers import MIN_FEEDS_FOR_PROCESSES, Context, Digester, FeedDigest

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def select_feeds(
    store: Store, settings: Settings, *, names: Sequence[str] = (), everything: bool, now: datetime
) -> list[Feed]:
    """The feeds one poll should visit: named ones, all, or those that are due."""
    if names:
        unknown = sorted(set(names) - {f.name for f in settings.feeds})
        if unknown:
            known = ", ".join(f.name for f in settings.feeds) or "none configured"
            raise UsageError(f"unknown feed {', '.join(map(repr, unknown))} (known: {known})")
        return store.feeds(list(dict.fromkeys(names)))
    if everything:
        return [feed for feed in store.feeds() if feed.active]
    return store.due_feeds(now, WaitLimits.from_settings(settings))


def poll(
    store: Store,
    settings: Settings,
    *,
    names: Sequence[str] = (),
    everything: bool = False,
    clock: Clock = utc_now,
    linker: Linker | None = None,
) -> Iterator[PollReport]:
    """Poll the selected feeds once, yielding one report per feed as it is stored.

    Pass a long-lived `linker` to keep the dedup index in memory between polls
    (the daemon); without one, the index is loaded from the store when needed.
    """
    now = clock()
    linker = linker or Linker(store, settings)
    store.sync_feeds(settings.feeds, now)
    feeds = select_feeds(store, settings, names=names, everything=everything, now=now)
    if not feeds:
        return
    processes = settings.daemon.processes if len(feeds) >= MIN_FEEDS_FOR_PROCESSES else 1
    with (
        Fetcher() as fetcher,
        Digester(processes, fork=True) as digester,
        ThreadPoolExecutor(
            max_workers=min(settings.workers, len(feeds)), thread_name_prefix="fetch"
        ) as pool,
    ):
        # Before the first fetch thread: workers forked now start with all imports done.
        # A feed never fetched before will be parsed and signed for certain.
        digester.start(will_sign=any(feed.body_hash is None for feed in feeds))
        started: dict[Future[Fetched], tuple[Feed, datetime]] = {}
        # At most `per_host` fetches from one host at a time, as the daemon does; feeds
        # are submitted round-robin across hosts so a waiting worker rarely blocks others.
        limits: dict[str, threading.BoundedSemaphore] = {}
        for feed in _round_robin_by_host(feeds):
            host = _host(feed.url)
            gate = limits.setdefault(host, threading.BoundedSemaphore(settings.daemon.per_host))
            job = fetch_job(settings, linker, digester, feed, gate)
            started[pool.submit(job, fetcher)] = (feed, clock())
        for future in as_completed(started):
            feed, started_at = started[future]
            fetched, digest = future.result()
            yield store_result(
                store, settings, linker, feed, fetched, started_at, clock(), digest=digest
            )
            store.index_if_many()
    store.index_pending()


Fetched = tuple[FetchResult, FeedDigest | None]


def fetch_job(
    settings: Settings,
    linker: Linker,
    digester: Digester,
    feed: Feed,
    gate: threading.BoundedSemaphore | None = None,
) -> Callable[[Fetcher], Fetched]:
    """A fetch of `feed` to run on a fetch thread; with a parallel digester, a digest too.

    Call on the writer thread: the feed's boilerplate is read from the store here.
    """
    request = fetch_request(settings, feed)
    # Read here, on the writer thread that owns the store.
    context = (
        Context(
            boilerplate=linker.boilerplate_now(feed.id),
            settings=settings.dedup,
            publishers=linker.publishers,
            known=linker.known_entries(feed.id),
        )
        if digester.parallel
        else None
    )
    fetcher_gate = gate or contextlib.nullcontext()

    def run(fetcher: Fetcher) -> Fetched:
        with fetcher_gate:
            fetched = fetcher.fetch(request)
        if (
            context is None
            or fetched.outcome is not FetchOutcome.OK
            or fetched.body is None
            or _body_hash(fetched.body) == feed.body_hash
        ):
            return fetched, None
        # Waits here, on the fetch thread, while a worker process parses and signs.
        digest = digester.feed(
            fetched.body, fetched.final_url, fetched.content_type, utc_now(), context
        )
        return fetched, digest

    return run


def _body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _round_robin_by_host(feeds: Sequence[Feed]) -> list[Feed]:
    queues: dict[str, list[Feed]] = {}
    for feed in feeds:
        queues.setdefault(_host(feed.url), []).append(feed)
    ordered: list[Feed] = []
    while queues:
        for host in list(queues):
            ordered.append(queues[host].pop(0))
            if not queues[host]:
                del queues[host]
    return ordered


def fetch_request(settings: Settings, feed: Feed) -> FetchRequest:
    """A conditional GET of the feed's current URL with its saved validators.

    The stored URL holds no secrets; the config's credentials (in memory only) are
    handed to the fetcher, which sends them to the configured origin alone.
    """
    config = settings.feed(feed.name)
    return FetchRequest(
        url=feed.url,
        etag=feed.etag,
        last_modified=feed.last_modified,
        polling=polling_for(settings, feed),
        credentials=config.credentials if config is not None else None,
    )


def polling_for(settings: Settings, feed: Feed) -> PollingSettings:
    """The feed's polling settings from the current config (defaults if it left)."""
    config = settings.feed(feed.name)
    return config.polling if config is not None else settings.polling


def store_result(
    store: Store,
    settings: Settings,
    linker: Linker,
    feed: Feed,
    fetched: FetchResult,
    started_at: datetime,
    now: datetime,
    *,
    digest: FeedDigest | None = None,
) -> PollReport:
    """Parse a fetched body, decide the feed's next state and commit both at once.

    A `digest` made by a worker process stands in for parsing here.
    """
    processing_started = time.monotonic()
    parsed: ParsedFeed | None = None
    parse_error: str | None = None
    body_hash = _body_hash(fetched.body) if fetched.body is not None else None
    unchanged = body_hash is not None and body_hash == feed.body_hash
    if digest is not None:
        parsed, parse_error = digest.parsed, digest.parse_error
    elif fetched.outcome is FetchOutcome.OK and fetched.body is not None and not unchanged:
        # A body byte-identical to the last one parsed holds nothing new: skip parsing.
        try:
            parsed = parse_feed(
                fetched.body, url=fetched.final_url, now=now, content_type=fetched.content_type
            )
        except ParseError as e:
            parse_error = str(e)

    polling = polling_for(settings, feed)
    update = decide_feed_update(
        feed,
        fetched,
        parsed,
        parse_error,
        interval=polling.interval,
        now=now,
        backoff_cap=timedelta(seconds=settings.daemon.backoff_cap),
        respect_server_hints=settings.daemon.respect_server_hints,
        jitter=feed_jitter(feed.name),
        body_hash=body_hash,
    )
    entries = parsed.entries if parsed is not None else ()
    report = PollReport(
        feed=feed.name,
        started_at=started_at,
        outcome=fetched.outcome,
        status=fetched.status,
        bytes_read=fetched.bytes_read,
        items_seen=len(entries),
        items_new=0,
        items_updated=0,
        duration=fetched.elapsed,
        error=update.last_error,
        warning=parsed.warning if parsed is not None else None,
        url=fetched.final_url,
    )
    try:
        with store.transaction():
            changes = store.upsert_entries(feed, entries, now)
            if parsed is not None:
                store.set_entry_hashes(feed.id, (entry.content_hash for entry in entries))
            dedup_started = time.monotonic()
            found = linker.link_changes(
                feed, changes, now, digest.items if digest is not None else None
            )
            dedup_seconds = time.monotonic() - dedup_started
            new = sum(1 for c in changes if c.status is ChangeStatus.NEW)
            updated = sum(1 for c in changes if c.status is ChangeStatus.CHANGED)
            store.record_poll(feed, update, report, len(entries), new, updated, now)
    except BaseException:
        linker.rollback()
        raise
    linker.commit()
    links = sum(count for kind, count in found.items() if kind != Relation.ORIGINAL.value)
    final = replace(
        report,
        items_new=new,
        items_updated=updated,
        links=links,
        dedup_seconds=dedup_seconds,
        relations=tuple(sorted(found.items())),
        duration=fetched.elapsed + (time.monotonic() - processing_started),
    )
    fields = {
        "feed": final.feed,
        "outcome": final.outcome.value,
        "status": final.status,
        "new": new,
        "updated": updated,
        "links": links,
        "duration": round(final.duration, 3),
        "error": final.error,
    }
    log.info(
        "poll feed=%s outcome=%s status=%s new=%d updated=%d links=%d duration=%.2fs%s",
        final.feed,
        final.outcome.value,
        final.status,
        new,
        updated,
        links,
        final.duration,
        f" error={final.error!r}" if final.error else "",
        extra={"poll": fields},
    )
    return final
