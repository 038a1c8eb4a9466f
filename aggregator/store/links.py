"""Storage for syndication detection: signatures, learned boilerplate, story links."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from aggregator.models import HASH_PREFIX, ItemText, Link, Member, Relation
from aggregator.store.schema import BODY_TEXT
from aggregator.store.times import format_time, parse_time


class LinkStore:
    """Mixed into Store; every write here must run inside Store.transaction()."""

    _conn: sqlite3.Connection
    # The change number of the open write transaction, taken on first use.
    _tx_seq: int | None = None

    def _change_seq(self) -> int:
        """The number every item written in this transaction is stamped with."""
        if self._tx_seq is None:
            self._conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'change'")
            self._tx_seq = int(
                self._conn.execute("SELECT value FROM counters WHERE name = 'change'").fetchone()[0]
            )
        return self._tx_seq

    def set_tickers(self, item_id: int, tickers: Iterable[str], *, new: bool = False) -> None:
        """Replace an item's instrument mentions (inside a transaction).

        With `new`, the caller knows the item has none stored yet.
        """
        if not new:
            self._conn.execute("DELETE FROM item_tickers WHERE item_id = ?", (item_id,))
        rows = [(item_id, ticker) for ticker in tickers]
        if rows:
            self._conn.executemany(
                "INSERT OR IGNORE INTO item_tickers (item_id, ticker) VALUES (?, ?)", rows
            )

    def set_entry_hashes(self, feed_id: int, hashes: Iterable[str]) -> None:
        """Remember the content hashes of the feed's last parsed document (in a transaction)."""
        self._conn.execute(
            "UPDATE feeds SET entry_hashes = ? WHERE id = ?",
            (" ".join(sorted({h[:HASH_PREFIX] for h in hashes})), feed_id),
        )

    def entry_hashes(self, feed_id: int) -> frozenset[str]:
        """Prefixes of the content hashes in the feed's last parsed document."""
        row = self._conn.execute(
            "SELECT entry_hashes FROM feeds WHERE id = ?", (feed_id,)
        ).fetchone()
        return frozenset((row[0] or "").split()) if row else frozenset()

    # -- parameters -------------------------------------------------------------

    def dedup_params(self) -> dict[str, object] | None:
        row = self._conn.execute("SELECT params FROM dedup_params WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def set_dedup_params(self, params: dict[str, object], now: datetime) -> None:
        self._conn.execute(
            "INSERT INTO dedup_params (id, params, created_at) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET params = excluded.params, "
            "created_at = excluded.created_at",
            (json.dumps(params, sort_keys=True), format_time(now)),
        )

    def publisher_sites(self) -> list[tuple[str, str]]:
        return [
            (publisher, site)
            for publisher, site in self._conn.execute(
                "SELECT publisher, site_url FROM feeds WHERE site_url IS NOT NULL"
            )
        ]

    def signature_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM signatures").fetchone()[0])

    # -- boilerplate --------------------------------------------------------------

    def learn_lines(
        self, feed_id: int, items: Sequence[Iterable[str]], known: frozenset[str] = frozenset()
    ) -> None:
        """Count each distinct line fingerprint of the feed once per story it is seen in.

        Chrome recurs beside other stories; a story's own paragraphs recur only beside
        the rest of that story (three takes of one wire, a backfill of repeated
        copies). So a line counts again only when the item it is seen in is of another
        story than the last item it was counted for: story_sketch() of each, compared
        by same_story().
        """
        lines_of = [set(lines) for lines in items]
        wanted = sorted({line for lines in lines_of for line in lines})
        last: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            last.update(
                (line, story)
                for line, story in self._conn.execute(
                    "SELECT line, last_story FROM feed_lines WHERE feed_id = ? AND line IN "
                    f"({','.join('?' * len(chunk))})",
                    [feed_id, *chunk],
                )
                if story is not None
            )
        counts: Counter[str] = Counter()
        for lines in lines_of:
            if not lines:
                continue
            sketch = story_sketch(lines, known)
            for line in lines:
                if not same_story(last.get(line), sketch):
                    counts[line] += 1
                last[line] = sketch
        # One statement for the batch: a feed's chrome repeats in most of its items.
        self._conn.executemany(
            "INSERT INTO feed_lines (feed_id, line, items, last_story) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(feed_id, line) DO UPDATE SET items = items + excluded.items, "
            "last_story = excluded.last_story",
            [(feed_id, line, counts[line], last[line]) for line in wanted],
        )
        self._conn.execute(
            "UPDATE feeds SET learned_items = learned_items + ? WHERE id = ?",
            (len(items), feed_id),
        )

    def boilerplate(self, feed_id: int, min_items: int, min_share: float) -> frozenset[str]:
        """Lines seen in at least `min_items` items and `min_share` of everything learned."""
        row = self._conn.execute(
            "SELECT learned_items FROM feeds WHERE id = ?", (feed_id,)
        ).fetchone()
        learned = int(row[0]) if row else 0
        floor = max(min_items, math.ceil(min_share * learned))
        return frozenset(
            line
            for (line,) in self._conn.execute(
                "SELECT line FROM feed_lines WHERE feed_id = ? AND items >= ?", (feed_id, floor)
            )
        )

    def forget_lines(self) -> None:
        self._conn.execute("DELETE FROM feed_lines")
        self._conn.execute("UPDATE feeds SET learned_items = 0")

    # -- signatures -----------------------------------------------------------------

    def save_signature(
        self,
        item_id: int,
        published: datetime,
        body: bytes,
        lead: bytes,
        text: str | None,
        shingles: int,
        credits: Iterable[str],
    ) -> None:
        """Store an item's signatures; `text` (its kept paragraphs) is None when it is
        the item's whole body, which the item row holds already."""
        self._conn.execute(
            "INSERT INTO signatures (item_id, published, body, lead, text, shingles, credits) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
            "published = excluded.published, body = excluded.body, lead = excluded.lead, "
            "text = excluded.text, shingles = excluded.shingles, credits = excluded.credits",
            (
                item_id,
                format_time(published),
                body,
                lead,
                text,
                shingles,
                json.dumps(sorted(credits)),
            ),
        )

    def iter_signatures(self, since: datetime) -> Iterator[tuple[int, bytes, bytes, datetime]]:
        cursor = self._conn.execute(
            "SELECT item_id, body, lead, published FROM signatures WHERE published >= ? "
            "ORDER BY item_id",
            (format_time(since),),
        )
        for item_id, body, lead, published in cursor:
            yield int(item_id), bytes(body), bytes(lead), _time(published)

    def clear_signatures(self) -> None:
        self._conn.execute("DELETE FROM signatures")

    # -- members and links ------------------------------------------------------------

    _MEMBER_SELECT = (
        "SELECT items.id, items.feed_id, feeds.publisher, items.published, items.first_seen, "
        "items.title, items.story_id, items.parent_id, "
        "CASE WHEN signatures.item_id IS NULL THEN '' "
        f"ELSE coalesce(signatures.text, {BODY_TEXT}) END, "
        "signatures.credits "
        "FROM items JOIN feeds ON feeds.id = items.feed_id "
        "LEFT JOIN signatures ON signatures.item_id = items.id "
    )

    def members(self, ids: Iterable[int]) -> dict[int, tuple[Member, str]]:
        """Items with the prepared text their signature was made from."""
        wanted = sorted(set(ids))
        found: dict[int, tuple[Member, str]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._conn.execute(
                f"{self._MEMBER_SELECT} WHERE items.id IN ({','.join('?' * len(chunk))})", chunk
            )
            for row in rows:
                member = _member(row)
                found[member.id] = (member, row[8] or "")
        return found

    def story_root(self, story_id: int) -> Member | None:
        row = self._conn.execute(
            f"{self._MEMBER_SELECT} WHERE items.id = ?", (story_id,)
        ).fetchone()
        return _member(row) if row else None

    def items_with_urls(self, canonical_urls: Iterable[str]) -> dict[str, list[int]]:
        """Ids of the items stored under each canonical URL, lowest first."""
        wanted = sorted(set(canonical_urls))
        found: dict[str, list[int]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for url, item_id in self._conn.execute(
                "SELECT canonical_url, id FROM items "
                f"WHERE canonical_url IN ({','.join('?' * len(chunk))}) ORDER BY canonical_url, id",
                chunk,
            ):
                found.setdefault(url, []).append(int(item_id))
        return found

    def set_link(self, link: Link) -> None:
        self._conn.execute(
            "UPDATE items SET story_id = ?, parent_id = ?, relation = ?, similarity = ?, "
            "containment = ?, lag_seconds = ?, method = ?, score = ?, change_seq = ? "
            "WHERE id = ?",
            (
                link.story_id,
                link.parent_id,
                link.relation.value,
                None if link.similarity is None else round(link.similarity, 4),
                None if link.containment is None else round(link.containment, 4),
                link.lag_seconds,
                link.method,
                None if link.score is None else round(link.score, 4),
                self._change_seq(),
                link.item_id,
            ),
        )

    def move_story(self, old_story: int, new_story: int) -> None:
        self._conn.execute(
            "UPDATE items SET story_id = ?, change_seq = ? WHERE story_id = ?",
            (new_story, self._change_seq(), old_story),
        )

    def reset_links(self, since: datetime | None) -> None:
        """Every item (published since `since`) back to the original of its own story."""
        self._conn.execute(
            "UPDATE items SET story_id = id, parent_id = NULL, relation = ?, similarity = NULL, "
            "containment = NULL, lag_seconds = NULL, method = NULL, score = NULL, change_seq = ? "
            "WHERE published >= ?",
            (Relation.ORIGINAL.value, self._change_seq(), format_time(since) if since else ""),
        )

    def item_texts(self, ids: Sequence[int]) -> list[tuple[int, ItemText]]:
        """(feed id, linking input) of stored items, in the order of `ids`."""
        found: dict[int, tuple[int, ItemText]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = self._conn.execute(
                f"SELECT id, feed_id, title, {BODY_TEXT}, canonical_url, "
                "published, first_seen, summary_html, content_html "
                f"FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for (
                item_id,
                feed_id,
                title,
                text,
                url,
                published,
                first_seen,
                summary_html,
                content_html,
            ) in rows:
                found[item_id] = (
                    feed_id,
                    ItemText(
                        item_id=item_id,
                        title=title or "",
                        text=text or "",
                        canonical_url=url,
                        published=_time(published),
                        first_seen=_time(first_seen),
                        html=f"{summary_html}\n{content_html}",
                    ),
                )
        return [found[i] for i in ids if i in found]

    def item_ids_by_published(self, since: datetime | None) -> list[int]:
        return [
            int(row[0])
            for row in self._conn.execute(
                "SELECT id FROM items WHERE published >= ? ORDER BY published, first_seen, id",
                (format_time(since) if since else "",),
            )
        ]


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None, "column is NOT NULL"
    return parsed


def _member(row: Sequence[Any]) -> Member:
    published = parse_time(row[3])
    first_seen = parse_time(row[4])
    assert published is not None and first_seen is not None, "columns are NOT NULL"
    return Member(
        id=int(row[0]),
        feed_id=int(row[1]),
        publisher=row[2],
        published=published,
        first_seen=first_seen,
        title=row[5] or "",
        credits=frozenset(json.loads(row[9] or "[]")),
        story_id=row[6],
        parent_id=row[7],
    )


# Lines of an item kept in its story sketch: the smallest fingerprints, a bottom-k
# MinHash of its set of lines.
SKETCH_LINES = 4


def story_sketch(lines: set[str], known: frozenset[str]) -> str:
    """The smallest fingerprints of an item's lines that are not `known` boilerplate."""
    return " ".join(sorted(lines - known or lines)[:SKETCH_LINES])


def same_story(previous: str | None, sketch: str) -> bool:
    """Two items share more than half of the smaller sketch: most of their lines (two
    two-line items that share only a disclaimer are different stories)."""
    if previous is None:
        return False
    mine, theirs = set(sketch.split()), set(previous.split())
    return len(mine & theirs) * 2 > min(len(mine), len(theirs))
