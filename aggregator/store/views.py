"""Read-only views of the store for people looking at it: the report's figures and the
schema the web view describes.

Everything here reads; nothing migrates or writes, so it can look at a database a
running daemon is writing (WAL lets it) and at one it must not change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from aggregator.errors import StorageError
from aggregator.models import FetchOutcome
from aggregator.store.schema import MIGRATIONS
from aggregator.store.times import format_time, parse_time


@dataclass(frozen=True, slots=True)
class CopyLink:
    """One syndicated copy: who was copied, who copied, how long after."""

    source: str
    copier: str
    lag_seconds: int
    similarity: float | None


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    items: int
    stories: int  # items that started a story (originals) that day
    copied_stories: int  # ... of which at least one other item is a copy


@dataclass(frozen=True, slots=True)
class FeedHealth:
    name: str
    publisher: str
    active: bool
    error_count: int
    last_error: str | None
    last_status: int | None
    last_polled_at: datetime | None
    items: int
    # Fetches in the period by outcome (FetchOutcome values), zero counts left out.
    fetches: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ReportData:
    since: datetime | None
    first_published: datetime | None
    last_published: datetime | None
    items: int
    stories: int
    publishers: tuple[tuple[str, int], ...]  # publisher, items; most items first
    copies: tuple[CopyLink, ...]
    days: tuple[DayCount, ...]
    feeds: tuple[FeedHealth, ...]


def _not_an_aggregator_db(path: Path, detail: str) -> StorageError:
    return StorageError(f"{path} is not an aggregator database ({detail})")


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise StorageError(f"no database at {path} (run `aggregator poll` or `aggregator demo`)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database {path}: {e}") from e
    try:
        conn.execute("PRAGMA query_only = 1")
        yield conn
    except sqlite3.DatabaseError as e:
        raise StorageError(f"cannot read database {path}: {' '.join(str(e).split())}") from e
    finally:
        conn.close()


def check_schema(path: Path) -> int:
    """The database's schema version; an error unless it is an up-to-date aggregator store.

    A viewer must not migrate (it opens the file read-only), so an older store is
    refused with the command that upgrades it.
    """
    with _read_only(path) as conn:
        try:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError as e:
            raise _not_an_aggregator_db(path, "no schema_migrations table") from e
    version = int(row[0] or 0)
    newest = max(version for version, _, _ in MIGRATIONS)
    if version < newest:
        raise StorageError(
            f"database {path} has schema {version}, this aggregator reads {newest}: run "
            f"`aggregator --db {path} items` once to upgrade it"
        )
    if version > newest:
        raise StorageError(
            f"database {path} was written by a newer aggregator (schema {version}, "
            f"this version knows {newest})"
        )
    return version


def table_columns(path: Path) -> dict[str, tuple[str, ...]]:
    """Every table (and virtual table) of the database with its columns, in order."""
    with _read_only(path) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            name: tuple(row[1] for row in conn.execute(f"PRAGMA table_xinfo('{name}')"))
            for name in names
        }


def report_data(path: Path, since: datetime | None) -> ReportData:
    """What `aggregator report` draws: items published since `since` (all if None)."""
    stamp = format_time(since) if since is not None else ""
    with _read_only(path) as conn:
        first, last, items, stories = conn.execute(
            "SELECT min(published), max(published), count(*), "
            "coalesce(sum(coalesce(story_id, id) = id), 0) FROM items WHERE published >= ?",
            (stamp,),
        ).fetchone()
        publishers = tuple(
            (row[0], int(row[1]))
            for row in conn.execute(
                "SELECT feeds.publisher, count(*) FROM items "
                "JOIN feeds ON feeds.id = items.feed_id "
                "WHERE items.published >= ? GROUP BY feeds.publisher "
                "ORDER BY count(*) DESC, feeds.publisher",
                (stamp,),
            )
        )
        copies = tuple(
            CopyLink(row[0], row[1], int(row[2] or 0), row[3])
            for row in conn.execute(
                "SELECT pf.publisher, cf.publisher, c.lag_seconds, c.similarity FROM items AS c "
                "JOIN items AS p ON p.id = c.parent_id "
                "JOIN feeds AS cf ON cf.id = c.feed_id JOIN feeds AS pf ON pf.id = p.feed_id "
                "WHERE c.published >= ? AND c.relation = 'syndicated' "
                "ORDER BY pf.publisher, cf.publisher, c.lag_seconds",
                (stamp,),
            )
        )
        days = tuple(
            DayCount(date.fromisoformat(row[0]), int(row[1]), int(row[2]), int(row[3]))
            for row in conn.execute(
                "SELECT substr(i.published, 1, 10) AS day, count(*), "
                "sum(coalesce(i.story_id, i.id) = i.id), "
                "sum(coalesce(i.story_id, i.id) = i.id AND EXISTS "
                "(SELECT 1 FROM items AS c WHERE c.story_id = i.id AND c.id != i.id)) "
                "FROM items AS i WHERE i.published >= ? GROUP BY day ORDER BY day",
                (stamp,),
            )
        )
        fetches: dict[int, list[tuple[str, int]]] = {}
        order = [outcome.value for outcome in FetchOutcome]
        for feed_id, outcome, count in conn.execute(
            "SELECT feed_id, outcome, count(*) FROM fetches WHERE started_at >= ? "
            "GROUP BY feed_id, outcome",
            (stamp,),
        ):
            fetches.setdefault(feed_id, []).append((outcome, int(count)))
        feeds = tuple(
            FeedHealth(
                name=row[1],
                publisher=row[2],
                active=bool(row[3]),
                error_count=int(row[4]),
                last_error=row[5],
                last_status=row[6],
                last_polled_at=parse_time(row[7]),
                items=int(row[8]),
                fetches=tuple(
                    sorted(
                        fetches.get(row[0], []),
                        key=lambda pair: order.index(pair[0]) if pair[0] in order else len(order),
                    )
                ),
            )
            for row in conn.execute(
                "SELECT id, name, publisher, active, error_count, last_error, last_status, "
                "last_polled_at, (SELECT count(*) FROM items WHERE items.feed_id = feeds.id "
                "AND items.published >= ?) FROM feeds WHERE in_config = 1 ORDER BY name",
                (stamp,),
            )
        )
    return ReportData(
        since=since,
        first_published=parse_time(first),
        last_published=parse_time(last),
        items=int(items),
        stories=int(stories),
        publishers=publishers,
        copies=copies,
        days=days,
        feeds=feeds,
    )
