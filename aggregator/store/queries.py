"""Read side for analysts and exports: search, filters, export cursors, statistics."""

from __future__ import annotations

import re
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregator.errors import StorageError, UsageError
from aggregator.models import StoredItem
from aggregator.store.records import stored_item
from aggregator.store.times import format_time

# One item with its feed, publisher and story size: every item listing selects this.
ITEM_SELECT = (
    "SELECT items.*, feeds.name AS feed_name, feeds.publisher AS publisher, "
    "(SELECT count(*) FROM items AS s WHERE s.story_id = items.story_id) AS story_size "
    "FROM items JOIN feeds ON feeds.id = items.feed_id"
)
# Matches of one query that are ranked: the newest ones (see Store.search).
SEARCH_WINDOW = 5000
# Characters with a meaning in FTS5 query syntax; a query without them is plain words.
_FTS_SYNTAX = re.compile(r'["*()^:+]|\b(?:AND|OR|NOT|NEAR)\b')
_WORD = re.compile(r"[^\s]+")


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Filters shared by `items`, `search` and `export`."""

    since: datetime | None = None
    until: datetime | None = None
    publishers: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    relation: str | None = None
    originals: bool = False
    # Originals, and copies whose verdict scored at least this.
    min_score: float | None = None

    def sql(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("items.published >= ?")
            params.append(format_time(self.since))
        if self.until is not None:
            clauses.append("items.published <= ?")
            params.append(format_time(self.until))
        if self.publishers:
            clauses.append(f"lower(feeds.publisher) IN ({','.join('?' * len(self.publishers))})")
            params.extend(p.casefold() for p in self.publishers)
        if self.feeds:
            clauses.append(f"feeds.name IN ({','.join('?' * len(self.feeds))})")
            params.extend(self.feeds)
        for tag in self.tags:
            clauses.append("EXISTS (SELECT 1 FROM json_each(feeds.tags) WHERE value = ?)")
            params.append(tag)
        if self.tickers:
            clauses.append(
                "items.id IN (SELECT item_id FROM item_tickers WHERE ticker IN "
                f"({','.join('?' * len(self.tickers))}))"
            )
            params.extend(t.upper() for t in self.tickers)
        if self.relation:
            clauses.append("coalesce(items.relation, 'original') = ?")
            params.append(self.relation)
        if self.originals:
            clauses.append("coalesce(items.story_id, items.id) = items.id")
        if self.min_score is not None:
            clauses.append("(items.parent_id IS NULL OR coalesce(items.score, 0) >= ?)")
            params.append(self.min_score)
        return clauses, params


@dataclass(frozen=True, slots=True)
class SearchHit:
    item: StoredItem
    snippet: str
    rank: float


@dataclass(frozen=True, slots=True)
class PairStats:
    source: str
    copier: str
    copies: int
    median_lag_seconds: float


@dataclass(frozen=True, slots=True)
class Stats:
    items_by_publisher: tuple[tuple[str, int, int], ...]  # publisher, items, originals copied
    matrix: tuple[PairStats, ...]
    top_stories: tuple[tuple[int, int, str, str], ...]  # story id, size, publisher, title
    feeds_in_error: tuple[tuple[str, int, str], ...] = field(default=())


_STORE_TROUBLE = re.compile(
    r"locked|busy|disk|I/O|malformed|corrupt|no such table|out of memory|read-?only|interrupt",
    re.IGNORECASE,
)


def fts_query(text: str) -> str:
    """Plain words become quoted terms (so "S&P 500" is not a syntax error); queries
    that use FTS5 syntax (quotes, AND/OR/NOT, NEAR, prefix*) are passed as they are."""
    if _FTS_SYNTAX.search(text):
        return text
    return " ".join('"' + word.replace('"', '""') + '"' for word in _WORD.findall(text))


class QueryStore:
    """Mixed into Store."""

    _conn: sqlite3.Connection

    def _select_rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _select_items(self, sql: str, params: Sequence[Any]) -> list[StoredItem]:
        try:
            rows = self._select_rows(sql, params)
        except sqlite3.Error as e:
            raise StorageError(f"cannot read items: {' '.join(str(e).split())}") from e
        tickers = self.tickers_of([row["id"] for row in rows])
        return [stored_item(row, tickers.get(row["id"], ())) for row in rows]

    def tickers_of(self, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            for item_id, ticker in self._conn.execute(
                "SELECT item_id, ticker FROM item_tickers "
                f"WHERE item_id IN ({','.join('?' * len(chunk))}) ORDER BY ticker",
                chunk,
            ):
                found.setdefault(item_id, []).append(ticker)
        return {k: tuple(v) for k, v in found.items()}

    # -- search -------------------------------------------------------------------

    def search(self, query: str, filters: ItemFilter, limit: int | None) -> list[SearchHit]:
        """Ranked matches (bm25, title weighted 5x) with a highlighted snippet.

        Ranking every match of a common word costs time in proportion to the matches;
        ranking is therefore done among the newest SEARCH_WINDOW matches (news is read
        newest first), and snippets are made only for the rows returned.
        """
        clauses, params = filters.sql()
        where = "".join(f" AND {c}" for c in clauses)
        match = fts_query(query)
        # Without filters, finding and ranking the window needs only the full-text
        # index; joining each match to its item and feed row was most of the time.
        source = (
            (
                "FROM items_fts JOIN items ON items.id = items_fts.rowid "
                "JOIN feeds ON feeds.id = items.feed_id "
                f"WHERE items_fts MATCH ?{where}"
            )
            if clauses
            else "FROM items_fts WHERE items_fts MATCH ?"
        )
        try:
            floor_row = self._conn.execute(
                f"SELECT items_fts.rowid {source} ORDER BY items_fts.rowid DESC LIMIT 1 OFFSET ?",
                [match, *params, SEARCH_WINDOW - 1],
            ).fetchone()
            window = " AND items_fts.rowid >= ?" if floor_row else ""
            window_args = [floor_row[0]] if floor_row else []
            limit_sql = " LIMIT ?" if limit else ""
            ranked = self._conn.execute(
                f"SELECT items_fts.rowid, bm25(items_fts, 5.0, 1.0, 1.0) AS rank {source}"
                f"{window} ORDER BY rank{limit_sql}",
                [match, *params, *window_args, *([limit] if limit else [])],
            ).fetchall()
            order = {rowid: n for n, (rowid, _) in enumerate(ranked)}
            ranks = dict(ranked)
            rows = self._select_rows(
                "SELECT items.*, feeds.name AS feed_name, feeds.publisher AS publisher, "
                "snippet(items_fts, -1, '\u00ab', '\u00bb', '\u2026', 16) AS snippet "
                "FROM items_fts JOIN items ON items.id = items_fts.rowid "
                "JOIN feeds ON feeds.id = items.feed_id "
                "WHERE items_fts MATCH ? AND items_fts.rowid IN "
                f"({','.join('?' * len(order)) or 'NULL'})",
                [match, *order],
            )
        except sqlite3.OperationalError as e:
            text = " ".join(str(e).split())
            # FTS5 words its complaints about a query in many ways ("unterminated
            # string", "unknown special query"); the store's own troubles are few.
            if _STORE_TROUBLE.search(text):
                raise StorageError(f"cannot search: {text}") from e
            raise UsageError(
                f"search query {query!r} is not valid FTS5 syntax ({text}); use plain "
                'words, "an exact phrase", AND/OR/NOT, NEAR(a b), or prefix*'
            ) from e
        rows.sort(key=lambda row: order[row["id"]])
        for row in rows:
            row["rank"] = ranks[row["id"]]
        tickers = self.tickers_of([row["id"] for row in rows])
        return [
            SearchHit(stored_item(row, tickers.get(row["id"], ())), row["snippet"], row["rank"])
            for row in rows
        ]

    # -- export cursors ---------------------------------------------------------------

    def change_high_water(self) -> int:
        row = self._conn.execute("SELECT value FROM counters WHERE name = 'change'").fetchone()
        return int(row[0]) if row else 0

    def cursor_seq(self, name: str) -> int:
        row = self._conn.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, name: str, seq: int, exported: int, now: datetime) -> None:
        """Record an export's high-water mark (inside a transaction)."""
        self._conn.execute(
            "INSERT INTO cursors (name, seq, updated_at, exported) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, "
            "updated_at = excluded.updated_at, exported = excluded.exported",
            (name, seq, format_time(now), exported),
        )

    def changed_items(self, after: int, up_to: int, filters: ItemFilter) -> list[StoredItem]:
        """Items written after change `after`, up to `up_to`, oldest change first."""
        clauses, params = filters.sql()
        where = "".join(f" AND {c}" for c in clauses)
        return self._select_items(
            f"{ITEM_SELECT} WHERE items.change_seq > ? AND items.change_seq <= ?{where} "
            "ORDER BY items.change_seq, items.id",
            [after, up_to, *params],
        )

    def filtered_items(self, filters: ItemFilter, limit: int | None) -> list[StoredItem]:
        """Items newest first; a limit of None or 0 means all."""
        clauses, params = filters.sql()
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        limit_sql = " LIMIT ?" if limit else ""
        return self._select_items(
            f"{ITEM_SELECT}{where} ORDER BY items.published DESC, items.id DESC{limit_sql}",
            [*params, *([limit] if limit else [])],
        )

    def items_by_id(self, ids: Sequence[int]) -> list[StoredItem]:
        return self._select_in("items.id", ids, "items.id")

    def story_items(self, story_ids: Sequence[int]) -> list[StoredItem]:
        """Every item of these stories, oldest first."""
        return self._select_in(
            "items.story_id", story_ids, "items.published, items.first_seen, items.id"
        )

    def _select_in(self, column: str, values: Sequence[int], order: str) -> list[StoredItem]:
        rows: list[StoredItem] = []
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            rows += self._select_items(
                f"{ITEM_SELECT} WHERE {column} IN ({','.join('?' * len(chunk))}) ORDER BY {order}",
                chunk,
            )
        return rows

    # -- statistics -----------------------------------------------------------------

    def stats(self, since: datetime | None, top: int = 10) -> Stats:
        stamp = format_time(since) if since else ""
        by_publisher = tuple(
            (row[0], int(row[1]), int(row[2] or 0))
            for row in self._conn.execute(
                "SELECT feeds.publisher, count(*), "
                "sum(items.story_id = items.id AND EXISTS (SELECT 1 FROM items AS c "
                "WHERE c.story_id = items.id AND c.id != items.id)) "
                "FROM items JOIN feeds ON feeds.id = items.feed_id "
                "WHERE items.published >= ? GROUP BY feeds.publisher ORDER BY count(*) DESC",
                (stamp,),
            )
        )
        lags: dict[tuple[str, str], list[int]] = {}
        for source, copier, lag in self._conn.execute(
            "SELECT pf.publisher, cf.publisher, c.lag_seconds FROM items AS c "
            "JOIN items AS p ON p.id = c.parent_id "
            "JOIN feeds AS cf ON cf.id = c.feed_id JOIN feeds AS pf ON pf.id = p.feed_id "
            "WHERE c.published >= ? AND c.relation = 'syndicated'",
            (stamp,),
        ):
            lags.setdefault((source, copier), []).append(int(lag or 0))
        matrix = tuple(
            sorted(
                (
                    PairStats(source, copier, len(values), statistics.median(values))
                    for (source, copier), values in lags.items()
                ),
                key=lambda p: (-p.copies, p.source, p.copier),
            )
        )
        top_stories = tuple(
            (int(row[0]), int(row[1]), row[2], row[3])
            for row in self._conn.execute(
                "SELECT o.id, count(*), f.publisher, o.title FROM items AS o "
                "JOIN items AS c ON c.story_id = o.id JOIN feeds AS f ON f.id = o.feed_id "
                "WHERE o.story_id = o.id AND o.published >= ? GROUP BY o.id "
                "HAVING count(*) > 1 ORDER BY count(*) DESC, o.published DESC LIMIT ?",
                (stamp, top),
            )
        )
        errors = tuple(
            (row[0], int(row[1]), row[2] or "")
            for row in self._conn.execute(
                "SELECT name, error_count, last_error FROM feeds "
                "WHERE in_config = 1 AND error_count > 0 ORDER BY error_count DESC, name"
            )
        )
        return Stats(by_publisher, matrix, top_stories, errors)
