"""SQLite storage. The only module that imports sqlite_utils.

One write connection in autocommit mode with explicit `BEGIN IMMEDIATE`
transactions: each feed's poll (items, feed state, fetch log) commits as one
unit, so a crash never leaves half a feed. WAL lets readers (the CLI) run
while a poll writes. Rows never leave this module: callers get frozen records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from aggregator.errors import DatabaseLockedError, StorageError
from aggregator.models import (
    Feed,
    FeedConfig,
    FeedUpdate,
    ParsedEntry,
    PollReport,
    StoredItem,
)

DEFAULT_BUSY_TIMEOUT = 10.0
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(value: datetime) -> str:
    """UTC ISO 8601 with a Z, second precision: sorts as text, reads as a time."""
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def _required_time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None, "column is NOT NULL"
    return parsed


# Numbered migrations, applied in order at start-up; never edit a released one.
def _m001_initial(db: sqlite_utils.Database) -> None:
    db.table("feeds").create(
        {
            "id": int,
            "name": str,
            "publisher": str,
            "url": str,
            "config_url": str,
            "tags": str,
            "active": int,
            "in_config": int,
            "etag": str,
            "last_modified": str,
            "error_count": int,
            "last_error": str,
            "last_status": int,
            "last_polled_at": str,
            "next_check_at": str,
            "retry_after_until": str,
            "bozo_warning": str,
            "created_at": str,
        },
        pk="id",
        not_null={
            "name",
            "publisher",
            "url",
            "config_url",
            "tags",
            "active",
            "in_config",
            "error_count",
            "created_at",
        },
        defaults={"active": 1, "in_config": 1, "error_count": 0, "tags": "[]"},
    )
    db.table("feeds").create_index(["name"], unique=True)
    db.table("feeds").create_index(["next_check_at"])

    db.table("items").create(
        {
            "id": int,
            "feed_id": int,
            "entry_key": str,
            "guid": str,
            "url": str,
            "canonical_url": str,
            "title": str,
            "author": str,
            "published": str,
            "published_from_feed": int,
            "updated": str,
            "summary_html": str,
            "summary_text": str,
            "content_html": str,
            "content_text": str,
            "categories": str,
            "content_hash": str,
            "first_seen": str,
            "last_seen": str,
            "updated_at": str,
            "revisions": int,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
        not_null={
            "feed_id",
            "entry_key",
            "title",
            "published",
            "published_from_feed",
            "summary_html",
            "summary_text",
            "content_html",
            "content_text",
            "categories",
            "content_hash",
            "first_seen",
            "last_seen",
            "updated_at",
            "revisions",
        },
        defaults={"revisions": 0, "categories": "[]"},
    )
    db.table("items").create_index(["feed_id", "entry_key"], unique=True)
    db.table("items").create_index(["published"])
    db.table("items").create_index(["canonical_url"])

    db.table("fetches").create(
        {
            "id": int,
            "feed_id": int,
            "started_at": str,
            "url": str,
            "outcome": str,
            "status": int,
            "bytes": int,
            "items_seen": int,
            "items_new": int,
            "items_updated": int,
            "duration": float,
            "error": str,
            "warning": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
        not_null={
            "feed_id",
            "started_at",
            "url",
            "outcome",
            "bytes",
            "items_seen",
            "items_new",
            "items_updated",
            "duration",
        },
    )
    db.table("fetches").create_index(["feed_id", "started_at"])


MIGRATIONS: Sequence[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = (
    (1, "initial schema: feeds, items, fetches", _m001_initial),
)


def _storage_error(
    action: str, path: Path, error: sqlite3.Error, busy_timeout: float
) -> StorageError:
    text = " ".join(str(error).split())
    if "locked" in text or "busy" in text:
        return DatabaseLockedError(
            f"database {path} is locked by another process (waited {busy_timeout:g}s)"
        )
    return StorageError(f"cannot {action} database {path}: {text}")


class Store:
    """The aggregator's database: feeds, items and the log of fetches."""

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn = conn
        self._db = sqlite_utils.Database(conn)

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
            if migrate:
                store._migrate()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise _storage_error("open", path, e, busy_timeout) from e
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _storage_error(action, self.path, e, self.busy_timeout) from e
        try:
            yield
        except sqlite3.Error as e:
            self._conn.execute("ROLLBACK")
            raise _storage_error(action, self.path, e, self.busy_timeout) from e
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise _storage_error(action, self.path, e, self.busy_timeout) from e

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

    _FEED_SELECT = (
        "SELECT feeds.*, (SELECT count(*) FROM items WHERE items.feed_id = feeds.id) "
        "AS item_count FROM feeds"
    )

    def feeds(
        self, names: Sequence[str] | None = None, *, in_config_only: bool = True
    ) -> list[Feed]:
        clauses: list[str] = []
        params: list[Any] = []
        if in_config_only:
            clauses.append("in_config = 1")
        if names is not None:
            clauses.append(f"name IN ({','.join('?' * len(names))})")
            params.extend(names)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"{self._FEED_SELECT}{where} ORDER BY name", params)
        return [_feed(row) for row in rows]

    def due_feeds(self, now: datetime) -> list[Feed]:
        stamp = format_time(now)
        rows = self._read(
            f"{self._FEED_SELECT} WHERE in_config = 1 AND active = 1 "
            "AND (next_check_at IS NULL OR next_check_at <= ?) "
            "AND (retry_after_until IS NULL OR retry_after_until <= ?) "
            "ORDER BY next_check_at IS NOT NULL, next_check_at, name",
            [stamp, stamp],
        )
        return [_feed(row) for row in rows]

    # -- one poll ---------------------------------------------------------------

    def apply_poll(
        self,
        feed: Feed,
        update: FeedUpdate,
        entries: Sequence[ParsedEntry],
        report: PollReport,
        now: datetime,
    ) -> tuple[int, int]:
        """Store a poll's entries, the feed's new state and the fetch log in one transaction.

        Returns (new items, updated items). An entry already stored under the
        same key is updated in place and never duplicated.
        """
        stamp = format_time(now)
        new = updated = 0
        with self._transaction("write to"):
            for entry in entries:
                row = self._conn.execute(
                    "SELECT id, content_hash, published, published_from_feed FROM items "
                    "WHERE feed_id = ? AND entry_key = ?",
                    (feed.id, entry.key),
                ).fetchone()
                if row is None:
                    self._conn.execute(
                        "INSERT INTO items (feed_id, entry_key, guid, url, canonical_url, title, "
                        "author, published, published_from_feed, updated, summary_html, "
                        "summary_text, content_html, content_text, categories, content_hash, "
                        "first_seen, last_seen, updated_at, revisions) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                        (feed.id, entry.key, *_entry_values(entry), stamp, stamp, stamp),
                    )
                    new += 1
                    continue
                item_id, old_hash, old_published, old_from_feed = row
                if old_hash == entry.content_hash:
                    self._conn.execute(
                        "UPDATE items SET last_seen = ? WHERE id = ?", (stamp, item_id)
                    )
                    continue
                values = list(_entry_values(entry))
                if not entry.published_from_feed:
                    # No date in the feed: the first time we saw it stays its date.
                    values[5], values[6] = old_published, old_from_feed
                self._conn.execute(
                    "UPDATE items SET guid = ?, url = ?, canonical_url = ?, title = ?, "
                    "author = ?, published = ?, published_from_feed = ?, updated = ?, "
                    "summary_html = ?, summary_text = ?, content_html = ?, content_text = ?, "
                    "categories = ?, content_hash = ?, last_seen = ?, updated_at = ?, "
                    "revisions = revisions + 1 WHERE id = ?",
                    (*values, stamp, stamp, item_id),
                )
                updated += 1

            self._conn.execute(
                "UPDATE feeds SET url = ?, active = ?, etag = ?, last_modified = ?, "
                "error_count = ?, last_error = ?, last_status = ?, last_polled_at = ?, "
                "next_check_at = ?, retry_after_until = ?, bozo_warning = ? WHERE id = ?",
                (
                    update.url,
                    int(update.active),
                    update.etag,
                    update.last_modified,
                    update.error_count,
                    update.last_error,
                    update.last_status,
                    stamp,
                    format_time(update.next_check_at),
                    format_time(update.retry_after_until) if update.retry_after_until else None,
                    update.bozo_warning,
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
                    len(entries),
                    new,
                    updated,
                    round(report.duration, 4),
                    report.error,
                    report.warning,
                ),
            )
        return new, updated

    # -- reading items ----------------------------------------------------------

    def items(
        self,
        *,
        feeds: Sequence[str] | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[StoredItem]:
        clauses: list[str] = []
        params: list[Any] = []
        if feeds:
            clauses.append(f"feeds.name IN ({','.join('?' * len(feeds))})")
            params.extend(feeds)
        if since is not None:
            clauses.append("items.published >= ?")
            params.append(format_time(since))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit_sql = ""
        if limit is not None:
            limit_sql = "LIMIT ?"
            params.append(limit)
        rows = self._read(
            "SELECT items.*, feeds.name AS feed_name, feeds.publisher AS publisher "
            f"FROM items JOIN feeds ON feeds.id = items.feed_id {where} "
            f"ORDER BY items.published DESC, items.id DESC {limit_sql}",
            params,
        )
        return [
            StoredItem(
                id=row["id"],
                feed=row["feed_name"],
                publisher=row["publisher"],
                entry_key=row["entry_key"],
                url=row["url"],
                title=row["title"],
                author=row["author"],
                published=_required_time(row["published"]),
                first_seen=_required_time(row["first_seen"]),
                updated_at=_required_time(row["updated_at"]),
                revisions=row["revisions"],
                summary_text=row["summary_text"] or row["content_text"],
                categories=tuple(json.loads(row["categories"])),
            )
            for row in rows
        ]

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


def _feed(row: dict[str, Any]) -> Feed:
    return Feed(
        id=row["id"],
        name=row["name"],
        publisher=row["publisher"],
        url=row["url"],
        config_url=row["config_url"],
        tags=tuple(json.loads(row["tags"] or "[]")),
        active=bool(row["active"]),
        in_config=bool(row["in_config"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        error_count=row["error_count"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        last_polled_at=parse_time(row["last_polled_at"]),
        next_check_at=parse_time(row["next_check_at"]),
        retry_after_until=parse_time(row["retry_after_until"]),
        bozo_warning=row["bozo_warning"],
        item_count=row.get("item_count") or 0,
    )
