"""SQLite storage. The only module that imports sqlite_utils.

One write connection in autocommit mode with explicit `BEGIN IMMEDIATE`
transactions: each feed's poll (items, feed state, fetch log) commits as one
unit, so a crash never leaves half a feed. WAL lets readers (the CLI) run
while a poll writes. Rows never leave this module: callers get frozen records.

Before each write transaction the store checks that its path still names the
file it opened and that the files can still be written (store/files.py); when
not, every later write raises DatabaseUnusableError and the writer stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from aggregator.errors import DatabaseLockedError, DatabaseUnusableError, StorageError
from aggregator.models import (
    ChangeStatus,
    EntryChange,
    Feed,
    FeedConfig,
    FeedUpdate,
    ParsedEntry,
    PollReport,
    StoredItem,
    StoreStatus,
    StorySummary,
)
from aggregator.store.files import FileGuard
from aggregator.store.links import LinkStore
from aggregator.store.queries import ItemFilter, QueryStore
from aggregator.store.records import feed_record, required_time
from aggregator.store.schema import MIGRATIONS
from aggregator.store.times import format_time, format_time_ceil, parse_time

DEFAULT_BUSY_TIMEOUT = 10.0
# SQLite's page cache per connection (its default is 2 MB). Linking touches the
# signatures, learned lines and items of a window that grows to gigabytes: see
# docs/design.md ("Other hot-path rules") for what 64 MB buys.
CACHE_KIB = 65_536
# Items written before a writer indexes them for search mid-run (index_pending): the
# per-row cost of FTS5 falls with the batch; see docs/design.md.
SEARCH_BATCH = 2000

log = logging.getLogger(__name__)


class WaitLimits(Protocol):
    """How far ahead each feed can honestly be scheduled (aggregator.schedule.WaitLimits)."""

    @property
    def shortest(self) -> timedelta:
        """No feed's limit is shorter: feeds scheduled closer than this need no look."""
        ...

    def pull_back(self, feed: Feed, now: datetime) -> Feed | None:
        """The feed with its schedule made due when it lies beyond its limit, else None."""
        ...


def _storage_error(
    action: str, path: Path, error: sqlite3.Error, busy_timeout: float
) -> StorageError:
    text = " ".join(str(error).split())
    if "locked" in text or "busy" in text:
        return DatabaseLockedError(
            f"database {path} is locked by another process (waited {busy_timeout:g}s)"
        )
    return StorageError(f"cannot {action} database {path}: {text}")


class Store(LinkStore, QueryStore):
    """The aggregator's database: feeds, items and the log of fetches."""

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn = conn
        self._db = sqlite_utils.Database(conn)
        # Items written through this store and not yet in the full-text index.
        self.unindexed = 0
        self._guard: FileGuard | None = None
        # Once set, why every write is refused: the file is gone, replaced or read-only.
        self._unusable: str | None = None
        self._abandon = False

    @classmethod
    def open(
        cls, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, migrate: bool = True
    ) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create directory for database {path}: {e.strerror}") from e
        try:
            # Autocommit at the driver level: transactions are explicit below.
            conn = sqlite3.connect(
                str(path),
                isolation_level=None,
                timeout=busy_timeout,
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise _storage_error("open", path, e, busy_timeout) from e
        store = cls(path, conn, busy_timeout)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode and str(mode[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
            # Never map the database file: a mapped file that turns read-only or shrinks
            # is SIGBUS instead of an error. The -shm file is mapped whatever we say (WAL's
            # readers need it; only locking_mode=EXCLUSIVE avoids it, and that locks every
            # reader out), so the FileGuard checks it before each write instead.
            conn.execute("PRAGMA mmap_size = 0")
            store._guard = FileGuard(path)
            if migrate:
                store._migrate()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise _storage_error("open", path, e, busy_timeout) from e
        except OSError as e:
            conn.close()
            raise StorageError(f"cannot open database {path}: {e.strerror}") from e
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        if self._abandon:
            # Closing checkpoints, which writes the -shm mapping: SIGBUS once that file
            # cannot be written. Left open, the connection ends with the process like a
            # killed one; the WAL keeps every commit and the next opener recovers it.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._conn))
            return
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str) -> Iterator[None]:
        # Before BEGIN: taking the write lock already touches the -shm mapping.
        self._check_files()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _storage_error(action, self.path, e, self.busy_timeout) from e
        self._tx_seq = None
        try:
            yield
        except sqlite3.Error as e:
            self._rollback()
            raise _storage_error(action, self.path, e, self.busy_timeout) from e
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            raise _storage_error(action, self.path, e, self.busy_timeout) from e

    def _check_files(self) -> None:
        """Refuse to write unless the path still names our file and it can be written."""
        if self._unusable is None and self._guard is not None:
            problem = self._guard.problem()
            if problem is not None:
                text = problem.text
                if problem.orphaned:
                    text = f"{text}: stopped writing; {self._rescue()}"
                self._abandon = problem.shm_unwritable
                self._unusable = text
        if self._unusable is not None:
            raise DatabaseUnusableError(self._unusable)

    def _rescue(self) -> str:
        """Save the orphaned file we hold open next to the path: nobody else can reach it."""
        # Our frames in <db>-wal belong to the old file. Checkpointed into it now and the
        # WAL emptied, the next process to open the path cannot read them as pages of
        # whatever sits there now. (Closing leaves the empty -wal and -shm behind: SQLite
        # sees the file has moved and neither checkpoints nor deletes.)
        emptied = False
        with contextlib.suppress(sqlite3.Error):
            emptied = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        name = self.path.name
        left = (
            ""
            if emptied
            else f"; {name}-wal still holds the old file's pages: with every reader of "
            f"{name} stopped, delete {name}-wal and {name}-shm"
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.rescued-{stamp}")
        for n in range(2, 100):
            if not target.exists():
                break
            target = self.path.with_name(f"{self.path.name}.rescued-{stamp}-{n}")
        try:
            copy = sqlite3.connect(target)
            try:
                self._conn.backup(copy)
            finally:
                copy.close()
        except (sqlite3.Error, OSError) as e:
            with contextlib.suppress(OSError):
                target.unlink(missing_ok=True)
            return f"could not save what it held: {' '.join(str(e).split())}{left}"
        return f"everything it held is saved in {target}{left}"

    def _rollback(self) -> None:
        # SQLite rolls back by itself after a full disk or an I/O error; a second
        # ROLLBACK would fail and hide the error that explains what happened.
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        try:
            return list(self._db.query(sql, params))
        except sqlite3.Error as e:
            raise _storage_error("read", self.path, e, self.busy_timeout) from e

    # -- schema -----------------------------------------------------------------

    def _migrate(self) -> None:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in self._conn.execute("SELECT version FROM schema_migrations")}
        newest_known = max(version for version, _, _ in MIGRATIONS)
        if applied and max(applied) > newest_known:
            raise StorageError(
                f"database {self.path} was written by a newer aggregator "
                f"(schema {max(applied)}, this version knows {newest_known})"
            )
        for version, name, migration in MIGRATIONS:
            if version in applied:
                continue
            with self._transaction("migrate"):
                # Re-check inside the write lock: another process may have just migrated.
                done = self._conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ).fetchone()
                if done:
                    continue
                migration(self._db)
                self._conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, format_time(datetime.now(UTC))),
                )

    def schema_version(self) -> int:
        row = self._conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # -- feeds ------------------------------------------------------------------

    def sync_feeds(self, configs: Iterable[FeedConfig], now: datetime) -> None:
        """Make the feeds table match the configuration, keeping learned state.

        Feeds dropped from the config keep their items and are only marked
        `in_config = 0`; a changed URL in the config restarts from that URL.
        """
        configs = list(configs)
        with self._transaction("update feeds in"):
            existing = {
                row[0]: (row[1], row[2])
                for row in self._conn.execute("SELECT name, config_url, id FROM feeds")
            }
            for config in configs:
                tags = json.dumps(list(config.tags))
                if config.name not in existing:
                    self._conn.execute(
                        "INSERT INTO feeds (name, publisher, url, config_url, tags, active, "
                        "in_config, error_count, created_at) VALUES (?, ?, ?, ?, ?, 1, 1, 0, ?)",
                        (
                            config.name,
                            config.publisher,
                            config.url,
                            config.url,
                            tags,
                            format_time(now),
                        ),
                    )
                elif existing[config.name][0] != config.url:
                    self._conn.execute(
                        "UPDATE feeds SET publisher = ?, tags = ?, in_config = 1, url = ?, "
                        "config_url = ?, active = 1, etag = NULL, last_modified = NULL, "
                        "error_count = 0, last_error = NULL, next_check_at = NULL, "
                        "retry_after_until = NULL WHERE name = ?",
                        (config.publisher, tags, config.url, config.url, config.name),
                    )
                else:
                    self._conn.execute(
                        "UPDATE feeds SET publisher = ?, tags = ?, in_config = 1 WHERE name = ?",
                        (config.publisher, tags, config.name),
                    )
            names = [config.name for config in configs]
            placeholders = ",".join("?" * len(names))
            self._conn.execute(
                f"UPDATE feeds SET in_config = 0 WHERE name NOT IN ({placeholders})", names
            )

    def archive_feed(self, publisher: str, now: datetime) -> Feed:
        """The pseudo-feed that holds a publisher's imported items (never polled)."""
        slug = re.sub(r"[^a-z0-9]+", "-", publisher.casefold()).strip("-")[:48] or "unknown"
        name = f"import-{slug}"
        with self._transaction("write to"):
            self._conn.execute(
                "INSERT INTO feeds (name, publisher, url, config_url, tags, active, in_config, "
                "error_count, created_at) VALUES (?, ?, ?, ?, '[\"import\"]', 0, 0, 0, ?) "
                "ON CONFLICT(name) DO NOTHING",
                (name, publisher, f"import:{slug}", f"import:{slug}", format_time(now)),
            )
        return self.feeds([name], in_config_only=False)[0]

    _FEED_SELECT = "SELECT feeds.* FROM feeds"
    # Counting a feed's items is a scan of its index range: only listings ask for it,
    # not the due-feed query every daemon tick runs.
    _FEED_SELECT_COUNTED = (
        "SELECT feeds.*, (SELECT count(*) FROM items WHERE items.feed_id = feeds.id) "
        "AS item_count FROM feeds"
    )

    def feeds(
        self,
        names: Sequence[str] | None = None,
        *,
        in_config_only: bool = True,
        with_counts: bool = False,
    ) -> list[Feed]:
        clauses: list[str] = []
        params: list[Any] = []
        if in_config_only:
            clauses.append("in_config = 1")
        if names is not None:
            clauses.append(f"name IN ({','.join('?' * len(names))})")
            params.extend(names)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        select = self._FEED_SELECT_COUNTED if with_counts else self._FEED_SELECT
        rows = self._read(f"{select}{where} ORDER BY name", params)
        return [feed_record(row) for row in rows]

    def due_feeds(self, now: datetime, limits: WaitLimits | None = None) -> list[Feed]:
        """Active configured feeds due at `now`, those never polled first.

        With `limits`, feeds scheduled further ahead than they can ever wait are first
        made due, with a warning: only a clock that ran ahead (or an interval since
        shortened in the config) writes such a time, and it would hold them for good.
        """
        if limits is not None:
            self._pull_back(now, limits)
        stamp = format_time(now)
        rows = self._read(
            f"{self._FEED_SELECT} WHERE in_config = 1 AND active = 1 "
            "AND (next_check_at IS NULL OR next_check_at <= ?) "
            "AND (retry_after_until IS NULL OR retry_after_until <= ?) "
            "ORDER BY next_check_at IS NOT NULL, next_check_at, name",
            [stamp, stamp],
        )
        return [feed_record(row) for row in rows]

    def _pull_back(self, now: datetime, limits: WaitLimits) -> None:
        # One read of the next_check_at index per selection, and normally of nothing: no
        # feed is scheduled past `shortest`. A Retry-After never ends after the feed's
        # next check (record_poll writes both from one decision), so that column is
        # enough to find a far one too.
        rows = self._read(
            f"{self._FEED_SELECT} WHERE next_check_at > ? AND in_config = 1 AND active = 1",
            [format_time(now + limits.shortest)],
        )
        moved = [
            (feed, fixed)
            for feed in map(feed_record, rows)
            if (fixed := limits.pull_back(feed, now)) is not None
        ]
        if not moved:
            return
        with self._transaction("write to"):
            self._conn.executemany(
                "UPDATE feeds SET next_check_at = ?, retry_after_until = ? WHERE id = ?",
                # Not rounded up: a time pulled back to `now` must be due in the query below.
                [
                    (
                        format_time(fixed.next_check_at) if fixed.next_check_at else None,
                        format_time(fixed.retry_after_until) if fixed.retry_after_until else None,
                        fixed.id,
                    )
                    for _, fixed in moved
                ],
            )
        furthest = max(
            max(feed.next_check_at or now, feed.retry_after_until or now) for feed, _ in moved
        )
        names = [feed.name for feed, _ in moved]
        log.warning(
            "%d feeds were scheduled up to %s ahead, further than they can ever wait "
            "(did the clock run ahead?); polling them now: %s",
            len(moved),
            _span(furthest - now),
            ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else ""),
        )

    # -- one poll ---------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; the methods marked "inside a transaction" need it."""
        with self._transaction("write to"):
            yield

    def index_pending(self) -> int:
        """Add the items written since the last call to the full-text index, in one batch.

        Writers call it after each poll and every SEARCH_BATCH items, so `search` finds
        an item from the end of the poll that stored it. Items left over by a writer
        that was killed are indexed by the next one.
        """
        with self._transaction("index"):
            count = self._conn.execute(
                "INSERT INTO items_fts (rowid, title, summary_text, content_text) "
                "SELECT items.id, items.title, items.summary_text, items.content_text "
                "FROM fts_pending JOIN items ON items.id = fts_pending.id"
            ).rowcount
            self._conn.execute("DELETE FROM fts_pending")
        self.unindexed = 0
        return count

    def index_if_many(self) -> None:
        """index_pending() once SEARCH_BATCH items wait: a long poll or import stays searchable."""
        if self.unindexed >= SEARCH_BATCH:
            self.index_pending()

    def apply_poll(
        self,
        feed: Feed,
        update: FeedUpdate,
        entries: Sequence[ParsedEntry],
        report: PollReport,
        now: datetime,
    ) -> tuple[int, int]:
        """Store a poll's entries, the feed's new state and the fetch log in one transaction."""
        with self.transaction():
            changes = self.upsert_entries(feed, entries, now)
            new = sum(1 for c in changes if c.status is ChangeStatus.NEW)
            updated = sum(1 for c in changes if c.status is ChangeStatus.CHANGED)
            self.record_poll(feed, update, report, len(entries), new, updated, now)
        return new, updated

    def stored_entries(
        self, feed_id: int, keys: Sequence[str]
    ) -> dict[str, tuple[int, str, str, int]]:
        """(id, content_hash, published, published_from_feed) of each of `keys` stored."""
        rows: dict[str, tuple[int, str, str, int]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for key, *row in self._conn.execute(
                "SELECT entry_key, id, content_hash, published, published_from_feed FROM items "
                f"WHERE feed_id = ? AND entry_key IN ({marks})",
                (feed_id, *chunk),
            ):
                rows[key] = (row[0], row[1], row[2], row[3])
        return rows

    def upsert_entries(
        self, feed: Feed, entries: Sequence[ParsedEntry], now: datetime
    ) -> list[EntryChange]:
        """Insert new entries and update changed ones in place (inside a transaction).

        An entry already stored under the same key in this feed is never duplicated.
        """
        stamp = format_time(now)
        changes: list[EntryChange] = []
        stored = self.stored_entries(feed.id, [entry.key for entry in entries])
        # Unchanged entries only move last_seen: one statement for all of them.
        seen: list[tuple[str, int]] = []
        next_id: int | None = None
        for entry in entries:
            row = stored.get(entry.key)
            if row is None:
                if next_id is None:
                    # The id SQLite would pick (no AUTOINCREMENT; this transaction is the
                    # only writer), chosen here so the row is its own story from the start.
                    next_id = int(
                        self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM items").fetchone()[
                            0
                        ]
                    )
                item_id, next_id = next_id, next_id + 1
                values = _entry_values(entry)
                self._conn.execute(
                    "INSERT INTO items (id, feed_id, entry_key, guid, url, canonical_url, title, "
                    "author, published, published_from_feed, updated, summary_html, "
                    "summary_text, content_html, content_text, categories, content_hash, "
                    "first_seen, last_seen, updated_at, revisions, story_id, relation, "
                    "change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, 0, ?, 'original', ?)",
                    (
                        item_id,
                        feed.id,
                        entry.key,
                        *values,
                        stamp,
                        stamp,
                        stamp,
                        item_id,
                        self._change_seq(),
                    ),
                )
                # A key repeated within one document is stored once, as a later sight.
                stored[entry.key] = (item_id, entry.content_hash, values[5], values[6])
                changes.append(EntryChange(item_id, entry, ChangeStatus.NEW, now))
                continue
            item_id, old_hash, old_published, old_from_feed = row
            if old_hash == entry.content_hash:
                seen.append((stamp, item_id))
                changes.append(EntryChange(item_id, entry, ChangeStatus.SAME, now))
                continue
            update = list(_entry_values(entry))
            published = entry.published
            if not entry.published_from_feed:
                # No date in the feed: the first time we saw it stays its date.
                update[5], update[6] = old_published, old_from_feed
                published = required_time(update[5])
            self._conn.execute(
                "UPDATE items SET guid = ?, url = ?, canonical_url = ?, title = ?, "
                "author = ?, published = ?, published_from_feed = ?, updated = ?, "
                "summary_html = ?, summary_text = ?, content_html = ?, content_text = ?, "
                "categories = ?, content_hash = ?, last_seen = ?, updated_at = ?, "
                "revisions = revisions + 1, change_seq = ? WHERE id = ?",
                (*update, stamp, stamp, self._change_seq(), item_id),
            )
            changes.append(
                EntryChange(item_id, entry, ChangeStatus.CHANGED, now, published=published)
            )
        self._conn.executemany("UPDATE items SET last_seen = ? WHERE id = ?", seen)
        self.unindexed += len(changes) - len(seen)
        return changes

    def record_poll(
        self,
        feed: Feed,
        update: FeedUpdate,
        report: PollReport,
        seen: int,
        new: int,
        updated: int,
        now: datetime,
    ) -> None:
        """The feed's new state and one `fetches` row (inside a transaction)."""
        stamp = format_time(now)
        self._conn.execute(
            "UPDATE feeds SET url = ?, active = ?, etag = ?, last_modified = ?, "
            "error_count = ?, last_error = ?, last_status = ?, last_polled_at = ?, "
            "next_check_at = ?, retry_after_until = ?, bozo_warning = ?, site_url = ?, "
            "body_hash = ? WHERE id = ?",
            (
                update.url,
                int(update.active),
                update.etag,
                update.last_modified,
                update.error_count,
                update.last_error,
                update.last_status,
                stamp,
                format_time_ceil(update.next_check_at),
                format_time_ceil(update.retry_after_until) if update.retry_after_until else None,
                update.bozo_warning,
                update.site_url,
                update.body_hash,
                feed.id,
            ),
        )
        self._conn.execute(
            "INSERT INTO fetches (feed_id, started_at, url, outcome, status, bytes, "
            "items_seen, items_new, items_updated, duration, error, warning) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                feed.id,
                format_time(report.started_at),
                report.url,
                report.outcome.value,
                report.status,
                report.bytes_read,
                seen,
                new,
                updated,
                round(report.duration, 4),
                report.error,
                report.warning,
            ),
        )

    # -- reading items ----------------------------------------------------------

    def items(
        self,
        *,
        feeds: Sequence[str] | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
        originals_only: bool = False,
    ) -> list[StoredItem]:
        """Items newest first; `originals_only` gives one row per story, its original."""
        filters = ItemFilter(since=since, feeds=tuple(feeds or ()), originals=originals_only)
        return self.filtered_items(filters, limit)

    def item(self, item_id: int) -> StoredItem | None:
        found = self.items_by_id([item_id])
        return found[0] if found else None

    def story(self, story_id: int) -> list[StoredItem]:
        """Every item of a story, oldest first."""
        return self.story_items([story_id])

    def stories(
        self, *, since: datetime | None = None, min_copies: int = 1, limit: int | None = 50
    ) -> list[StorySummary]:
        """Stories newest first by their original, with at least `min_copies` copies."""
        params: list[Any] = [format_time(since) if since else "", min_copies + 1]
        limit_sql = ""
        if limit is not None:
            limit_sql = "LIMIT ?"
            params.append(limit)
        groups = self._read(
            "SELECT o.id AS story_id, count(*) AS size, max(i.published) AS last_published, "
            "json_group_array(DISTINCT f.publisher) AS publishers "
            "FROM items AS o JOIN items AS i ON i.story_id = o.id "
            "JOIN feeds AS f ON f.id = i.feed_id "
            "WHERE o.story_id = o.id AND o.published >= ? "
            "GROUP BY o.id HAVING count(*) >= ? "
            f"ORDER BY o.published DESC, o.id DESC {limit_sql}",
            params,
        )
        summaries = []
        for group in groups:
            original = self.item(group["story_id"])
            if original is None:
                continue
            summaries.append(
                StorySummary(
                    original=original,
                    size=group["size"],
                    publishers=tuple(sorted(json.loads(group["publishers"]))),
                    last_published=required_time(group["last_published"]),
                )
            )
        return summaries

    # -- the daemon -------------------------------------------------------------

    def daemon_started(self, pid: int, host: str, version: str, now: datetime) -> None:
        with self._transaction("write to"):
            self._conn.execute(
                "INSERT INTO daemon_state (id, pid, host, version, started_at, last_tick_at, "
                "stopped_at) VALUES (1, ?, ?, ?, ?, NULL, NULL) ON CONFLICT(id) DO UPDATE SET "
                "pid = excluded.pid, host = excluded.host, version = excluded.version, "
                "started_at = excluded.started_at, last_tick_at = NULL, stopped_at = NULL",
                (pid, host, version, format_time(now)),
            )

    def daemon_ticked(self, now: datetime) -> None:
        with self._transaction("write to"):
            self._conn.execute(
                "UPDATE daemon_state SET last_tick_at = ? WHERE id = 1", (format_time(now),)
            )

    def daemon_stopped(self, now: datetime) -> None:
        with self._transaction("write to"):
            self._conn.execute(
                "UPDATE daemon_state SET stopped_at = ? WHERE id = 1", (format_time(now),)
            )

    def status(self, now: datetime) -> StoreStatus:
        """What `aggregator status` shows, read in one go."""
        state = self._read("SELECT * FROM daemon_state WHERE id = 1")
        stamp = format_time(now)
        due = self._read(
            "SELECT count(*) AS n FROM feeds WHERE in_config = 1 AND active = 1 "
            "AND (next_check_at IS NULL OR next_check_at <= ?) "
            "AND (retry_after_until IS NULL OR retry_after_until <= ?)",
            [stamp, stamp],
        )[0]["n"]
        backoff = [
            feed_record(row)
            for row in self._read(
                f"{self._FEED_SELECT} WHERE in_config = 1 AND error_count > 0 "
                "ORDER BY error_count DESC, name"
            )
        ]
        counts = self._read(
            "SELECT sum(first_seen >= ?) AS hour, sum(first_seen >= ?) AS day, count(*) AS total "
            "FROM items",
            [format_time(now - timedelta(hours=1)), format_time(now - timedelta(days=1))],
        )[0]
        row = state[0] if state else {}
        return StoreStatus(
            pid=row.get("pid"),
            host=row.get("host"),
            version=row.get("version"),
            started_at=parse_time(row.get("started_at")),
            last_tick_at=parse_time(row.get("last_tick_at")),
            stopped_at=parse_time(row.get("stopped_at")),
            feeds=len(self.feeds()),
            feeds_due=int(due),
            feeds_in_backoff=tuple(backoff),
            items_last_hour=int(counts["hour"] or 0),
            items_last_day=int(counts["day"] or 0),
            items_total=int(counts["total"] or 0),
        )

    def advance_cursor(self, name: str, seq: int, exported: int, now: datetime) -> None:
        with self._transaction("write to"):
            self.set_cursor(name, seq, exported, now)

    def count(self, table: str) -> int:
        if table not in ("feeds", "items", "fetches"):
            raise ValueError(table)
        return int(self._read(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def _entry_values(entry: ParsedEntry) -> tuple[Any, ...]:
    """Column values in the order shared by INSERT and UPDATE (guid .. content_hash)."""
    return (
        entry.guid,
        entry.url,
        entry.canonical_url,
        entry.title,
        entry.author,
        format_time(entry.published),
        int(entry.published_from_feed),
        format_time(entry.updated) if entry.updated else None,
        entry.summary_html,
        entry.summary_text,
        entry.content_html,
        entry.content_text,
        json.dumps(list(entry.categories), ensure_ascii=False),
        entry.content_hash,
    )


def _span(delta: timedelta) -> str:
    """A duration for people: '3d 4h', '2h 5m', '40s'."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"
