"""`aggregator run`: the long-running poller. The only apscheduler importer.

One coordinator thread (the caller's) owns the store and does all writing;
APScheduler only ticks, putting a message on the coordinator's queue; fetches
run on a bounded thread pool and post their results back to the same queue.
The database decides what is due (`feeds.next_check_at`), so a restart, a
crash or `aggregator poll` from cron all pick up exactly where things stand.

Messages: TICK (select the due feeds and hand them out), RESULT (store one fetched
feed, then hand out the next due one: the pool stays full between ticks), RELOAD
(SIGHUP: re-read config.toml), STOP (SIGTERM/SIGINT: stop taking work, let
in-flight feeds commit, exit within `shutdown_timeout`).

A database that is deleted, replaced or made read-only under the daemon
(DatabaseUnusableError) stops it at once: one error line, exit status 1, nothing
more written, since every later write would be lost or do harm.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import queue
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator import __version__
from aggregator.config import load_settings
from aggregator.errors import AggregatorError, DatabaseUnusableError
from aggregator.fetch import Fetcher
from aggregator.linker import Linker
from aggregator.lock import DatabaseLock
from aggregator.metrics import Metrics
from aggregator.models import Feed, Settings
from aggregator.pipeline import Clock, Fetched, fetch_job, select_feeds, store_result, utc_now
from aggregator.store import Store
from aggregator.workers import MIN_FEEDS_FOR_PROCESSES, Digester

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Result:
    feed: Feed
    started_at: datetime
    future: Future[Fetched]


@dataclass(frozen=True, slots=True)
class _Signal:
    name: str


_Message = _Tick | _Result | _Signal


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None,
        db_path: Path,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._config_path = config_path
        self._db_path = db_path
        self._clock = clock
        self._queue: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._in_flight: dict[int, str] = {}
        self._backlog = _Backlog()
        self._stopping = False
        self.metrics_port: int | None = None

    # -- signals ------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # SimpleQueue.put is safe to call from a signal handler.
        self._queue.put(_Signal(signal.Signals(signum).name))

    def stop(self) -> None:
        """Ask a running daemon to stop (from another thread), as SIGTERM would."""
        self._queue.put(_Signal("SIGTERM"))

    # -- the loop -------------------------------------------------------------------

    def run(self) -> int:
        # A fatal signal (SIGBUS from a mapped file that the store's checks did not see
        # turn read-only in time) says what and where on stderr instead of nothing.
        if not faulthandler.is_enabled():
            faulthandler.enable()
        # Handlers first: a SIGTERM while the store opens is queued, then honoured.
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            with (
                DatabaseLock(self._db_path, role="run"),
                Store.open(self._db_path, busy_timeout=self._settings.busy_timeout) as store,
            ):
                return self._run(store)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, store: Store) -> int:
        settings = self._settings
        now = self._clock()
        store.sync_feeds(settings.feeds, now)
        store.daemon_started(os.getpid(), socket.gethostname(), __version__, now)
        linker = Linker(store, settings)
        # Fail at start, not on every poll, when stored signatures need a rebuild.
        with store.transaction():
            linker.check_parameters(now)
        # Items a killed writer stored but did not index for search.
        store.index_pending()
        metrics = Metrics()
        if settings.daemon.metrics_port is not None:
            self.metrics_port = metrics.serve(settings.daemon.metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_port)

        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            lambda: self._queue.put(_Tick()),
            "interval",
            seconds=settings.daemon.tick,
            id="tick",
            coalesce=True,
            max_instances=1,
            # A tick that could not run on time is dropped, never queued up behind others.
            misfire_grace_time=max(1, int(settings.daemon.tick)),
            next_run_time=datetime.now().astimezone(),
        )
        pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="fetch")
        fetcher = Fetcher()
        # Worker processes start on the first body to digest, and only for enough feeds.
        digester = Digester(
            settings.daemon.processes if len(settings.feeds) >= MIN_FEEDS_FOR_PROCESSES else 1
        )
        scheduler.start()
        log.info(
            "daemon started: %d feeds, tick %gs, %d workers, %d per host",
            len(settings.feeds),
            settings.daemon.tick,
            settings.workers,
            settings.daemon.per_host,
        )
        deadline: float | None = None
        fatal: DatabaseUnusableError | None = None
        try:
            while True:
                if self._stopping and not self._in_flight:
                    break
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    log.warning(
                        "shutdown timeout: %d feeds still fetching are abandoned "
                        "(they are fetched again next start)",
                        len(self._in_flight),
                    )
                    break
                try:
                    message = self._queue.get(timeout=timeout)
                except queue.Empty:
                    continue
                try:
                    if isinstance(message, _Tick):
                        if not self._stopping:
                            self._dispatch(store, pool, fetcher, linker, digester)
                    elif isinstance(message, _Result):
                        self._store(store, linker, metrics, message)
                        if not self._stopping:
                            self._hand_out(pool, fetcher, linker, digester)
                    elif message.name == "SIGHUP":
                        linker = self._reload(store, linker)
                        # Feeds may have left the config: the next tick selects afresh.
                        self._backlog.reset(())
                    elif not self._stopping:
                        log.info(
                            "%s: stopping; %d feeds in flight get %gs to finish",
                            message.name,
                            len(self._in_flight),
                            settings.daemon.shutdown_timeout,
                        )
                        self._stopping = True
                        scheduler.pause()
                        deadline = time.monotonic() + self._settings.daemon.shutdown_timeout
                except DatabaseUnusableError as e:
                    # Feeds still fetching are dropped: nothing of theirs was committed.
                    log.error("stopping: %s", e)
                    fatal = e
                    break
        finally:
            scheduler.shutdown(wait=False)
            pool.shutdown(wait=False, cancel_futures=True)
            digester.close()
            fetcher.close()
            # After a fatal store error every write fails the same way: none is tried.
            if fatal is None:
                with contextlib.suppress(AggregatorError):
                    store.index_pending()
                store.daemon_stopped(self._clock())
            log.info("daemon stopped")
        return 0 if fatal is None else fatal.exit_code

    def _dispatch(
        self,
        store: Store,
        pool: ThreadPoolExecutor,
        fetcher: Fetcher,
        linker: Linker,
        digester: Digester,
    ) -> None:
        """A tick: select what is due (as `aggregator poll` does, schedules from a clock
        jump included) and hand out as much as the pool and the per-host limit take."""
        now = self._clock()
        store.daemon_ticked(now)
        due = select_feeds(store, self._settings, everything=False, now=now)
        self._backlog.reset(feed for feed in due if feed.id not in self._in_flight)
        self._hand_out(pool, fetcher, linker, digester)

    def _hand_out(
        self, pool: ThreadPoolExecutor, fetcher: Fetcher, linker: Linker, digester: Digester
    ) -> None:
        """Fill the fetch pool from the feeds the last tick found due.

        Called on every tick and after every stored result, so the pool never idles
        while due feeds wait: a tick is a wake-up (and a fresh look at the database),
        not a rate limit. The per-host limit still holds.
        """
        settings = self._settings
        now = self._clock()
        room = settings.workers - len(self._in_flight)
        busy = Counter(self._in_flight.values())
        for feed, host in self._backlog.take(room, busy, settings.daemon.per_host):
            future = pool.submit(fetch_job(settings, linker, digester, feed), fetcher)
            self._in_flight[feed.id] = host
            started_at = now

            def done(
                finished: Future[Fetched], feed: Feed = feed, started: datetime = started_at
            ) -> None:
                self._queue.put(_Result(feed, started, finished))

            future.add_done_callback(done)

    def _store(self, store: Store, linker: Linker, metrics: Metrics, message: _Result) -> None:
        try:
            fetched, digest = message.future.result()
            report = store_result(
                store, self._settings, linker, message.feed, fetched, message.started_at,
                self._clock(), digest=digest,
            )  # fmt: skip
            metrics.observe(report)
        except DatabaseUnusableError:
            raise
        except AggregatorError as e:
            # A locked or failing database must not kill the daemon: the feed stays
            # due and is fetched again on a later tick.
            log.error("could not store %s: %s", message.feed.name, e)
        except Exception:
            log.exception("unexpected error storing %s", message.feed.name)
        finally:
            self._in_flight.pop(message.feed.id, None)
        # New items become searchable in batches: once many wait, or when no other
        # result is queued behind this one.
        try:
            if store.unindexed and self._queue.empty():
                store.index_pending()
            else:
                store.index_if_many()
        except DatabaseUnusableError:
            raise
        except AggregatorError as e:
            log.error("could not update the search index: %s", e)

    def _reload(self, store: Store, linker: Linker) -> Linker:
        try:
            fresh = load_settings(self._config_path)
        except AggregatorError as e:
            log.error("SIGHUP: new configuration not loaded, keeping the old one: %s", e)
            return linker
        if fresh.dedup != self._settings.dedup:
            log.warning("SIGHUP: [dedup] changes take effect after a restart")
            fresh = replace(fresh, dedup=self._settings.dedup)
        if fresh.db_path.resolve() != self._settings.db_path.resolve():
            log.warning("SIGHUP: [storage] changes take effect after a restart")
        store.sync_feeds(fresh.feeds, self._clock())
        old = {f.name for f in self._settings.feeds}
        new = {f.name for f in fresh.feeds}
        self._settings = replace(fresh, db_path=self._settings.db_path)
        log.info(
            "SIGHUP: configuration reloaded: %d feeds (%d added, %d removed)",
            len(new),
            len(new - old),
            len(old - new),
        )
        return Linker(store, self._settings) if new != old else linker


def _host(feed: Feed) -> str:
    return (urlsplit(feed.url).hostname or "").lower()


class _Backlog:
    """Due feeds not yet handed out, queued by host and taken host by host in turn.

    Taking is O(hosts) whatever the number of feeds, so it can run after every
    result: 10,000 due feeds on one host do not make each hand-out scan 10,000.
    """

    def __init__(self) -> None:
        self._by_host: dict[str, deque[Feed]] = {}

    def __len__(self) -> int:
        return sum(len(feeds) for feeds in self._by_host.values())

    def reset(self, feeds: Iterable[Feed]) -> None:
        by_host: dict[str, deque[Feed]] = {}
        for feed in feeds:
            by_host.setdefault(_host(feed), deque()).append(feed)
        self._by_host = by_host

    def take(self, room: int, busy: Counter[str], per_host: int) -> list[tuple[Feed, str]]:
        """Up to `room` feeds, none from a host with `per_host` fetches in flight;
        `busy` counts them and is updated."""
        taken: list[tuple[Feed, str]] = []
        while len(taken) < room:
            free = [host for host in self._by_host if busy[host] < per_host]
            if not free:
                break
            for host in free:
                if len(taken) >= room:
                    break
                feeds = self._by_host.pop(host)
                taken.append((feeds.popleft(), host))
                busy[host] += 1
                # To the back of the turn, so the next hand-out starts with another host.
                if feeds:
                    self._by_host[host] = feeds
        return taken
