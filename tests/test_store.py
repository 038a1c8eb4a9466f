"""The SQLite store on a real file: schema, feed sync, one transaction per poll."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.backfill import run_import
from aggregator.errors import StorageError
from aggregator.models import (
    FeedConfig,
    FeedUpdate,
    FetchOutcome,
    ParsedEntry,
    PollReport,
)
from aggregator.store import ItemFilter, Store
from aggregator.store.schema import MIGRATIONS
from tests.feeds import NOW, make_settings


def entry(key: str, text: str = "Gold rallies.", **changes: object) -> ParsedEntry:
    base = ParsedEntry(
        key=key,
        guid=key,
        url=f"https://news.example/{key}",
        canonical_url=f"https://news.example/{key}",
        title=f"Story {key}",
        author="Desk",
        published=NOW - timedelta(hours=1),
        published_from_feed=True,
        updated=None,
        summary_html=f"<p>{text}</p>",
        summary_text=text,
        content_html="",
        content_text="",
        categories=("metals",),
        content_hash=f"hash-{key}-{text}",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def update_for(url: str) -> FeedUpdate:
    return FeedUpdate(
        url=url,
        active=True,
        etag='"e1"',
        last_modified=None,
        error_count=0,
        last_error=None,
        last_status=200,
        next_check_at=NOW + timedelta(minutes=15),
        retry_after_until=None,
        bozo_warning=None,
    )


def report(feed: str) -> PollReport:
    return PollReport(
        feed=feed,
        started_at=NOW,
        outcome=FetchOutcome.OK,
        status=200,
        bytes_read=100,
        items_seen=0,
        items_new=0,
        items_updated=0,
        duration=0.1,
        error=None,
        warning=None,
        url="https://news.example/feed",
    )


CONFIGS = [
    FeedConfig(name="gold", publisher="Gold Desk", url="https://news.example/gold"),
    FeedConfig(name="oil", publisher="Oil Desk", url="https://news.example/oil", tags=("energy",)),
]


def test_open_twice_applies_migrations_once_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "agg.db"
    with Store.open(path) as first:
        assert first.schema_version() == len(MIGRATIONS)
    with Store.open(path) as second:
        assert second.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            MIGRATIONS
        )


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agg.db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01T00:00:00Z')")
    with pytest.raises(StorageError, match="newer aggregator"):
        Store.open(path)


def test_sync_feeds_keeps_learned_state_and_resets_on_url_change(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    store.apply_poll(gold, update_for(gold.url), [entry("a")], report("gold"), NOW)

    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"], with_counts=True)[0]
    assert gold.etag == '"e1"' and gold.item_count == 1

    moved = [dataclasses.replace(CONFIGS[0], url="https://news.example/gold-v2"), CONFIGS[1]]
    store.sync_feeds(moved, NOW)
    gold = store.feeds(["gold"], with_counts=True)[0]
    assert (gold.url, gold.etag, gold.next_check_at) == ("https://news.example/gold-v2", None, None)
    assert gold.item_count == 1

    store.sync_feeds([CONFIGS[1]], NOW)
    assert [f.name for f in store.feeds()] == ["oil"]
    dropped = store.feeds(["gold"], in_config_only=False)[0]
    assert not dropped.in_config
    assert store.count("items") == 1
    assert [f.name for f in store.due_feeds(NOW)] == ["oil"]


def test_same_key_updates_in_place(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    assert store.apply_poll(gold, update_for(gold.url), [entry("a")], report("gold"), NOW) == (1, 0)
    later = NOW + timedelta(minutes=20)
    changed = entry("a", "Gold rallies to a record.")
    assert store.apply_poll(gold, update_for(gold.url), [changed], report("gold"), later) == (0, 1)
    assert store.apply_poll(gold, update_for(gold.url), [changed], report("gold"), later) == (0, 0)
    (item,) = store.items()
    assert item.revisions == 1
    assert item.first_seen == NOW
    assert item.updated_at == later
    assert item.summary_text == "Gold rallies to a record."


def test_undated_entry_keeps_first_seen_as_published(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    undated = entry("u", published=NOW, published_from_feed=False)
    store.apply_poll(gold, update_for(gold.url), [undated], report("gold"), NOW)
    later = NOW + timedelta(hours=2)
    edited = entry("u", "Edited.", published=later, published_from_feed=False)
    store.apply_poll(gold, update_for(gold.url), [edited], report("gold"), later)
    (item,) = store.items()
    assert item.published == NOW
    assert item.revisions == 1


def test_same_key_in_two_feeds_is_two_items(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    for feed in store.feeds():
        store.apply_poll(feed, update_for(feed.url), [entry("shared")], report(feed.name), NOW)
    assert store.count("items") == 2


def test_a_failing_poll_commits_nothing(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    broken = entry("b", title=None)  # violates NOT NULL after a good entry was written
    with pytest.raises(StorageError):
        store.apply_poll(gold, update_for(gold.url), [entry("a"), broken], report("gold"), NOW)
    assert store.count("items") == 0
    assert store.count("fetches") == 0
    gold = store.feeds(["gold"])[0]
    assert gold.etag is None and gold.last_polled_at is None


def test_items_filters_and_order(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold, oil = store.feeds(["gold"])[0], store.feeds(["oil"])[0]
    store.apply_poll(
        gold,
        update_for(gold.url),
        [entry(f"g{n}", published=NOW - timedelta(hours=n)) for n in range(5)],
        report("gold"),
        NOW,
    )
    store.apply_poll(
        oil,
        update_for(oil.url),
        [entry("o1", published=NOW - timedelta(minutes=90))],
        report("oil"),
        NOW,
    )
    keys = [item.entry_key for item in store.items()]
    assert keys == ["g0", "g1", "o1", "g2", "g3", "g4"]
    assert [i.entry_key for i in store.items(feeds=["oil"])] == ["o1"]
    recent = store.items(since=NOW - timedelta(hours=2))
    assert [i.entry_key for i in recent] == ["g0", "g1", "o1", "g2"]
    assert len(store.items(limit=2)) == 2


def _found(store: Store, query: str) -> list[str]:
    return [hit.item.title for hit in store.search(query, ItemFilter(), None)]


def _fts_check(path: Path) -> None:
    # FTS5's own check, which also compares the index with the items it was made from.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")


def test_search_index_is_filled_in_batches_and_follows_edits(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    store.apply_poll(gold, update_for(gold.url), [entry("a"), entry("b")], report("gold"), NOW)
    assert store.unindexed == 2
    assert _found(store, "rallies") == []  # written, not indexed yet
    # Edited before it was indexed: only the new text is indexed.
    edited = entry("a", "Copper slides.")
    store.apply_poll(gold, update_for(gold.url), [edited], report("gold"), NOW)
    assert store.index_pending() == 2
    assert store.unindexed == 0
    assert _found(store, "copper") == ["Story a"]
    assert _found(store, "rallies") == ["Story b"]
    # Edited after it was indexed: the old words leave the index with it.
    store.apply_poll(gold, update_for(gold.url), [entry("b", "Zinc firms.")], report("gold"), NOW)
    assert _found(store, "rallies") == []
    assert store.index_pending() == 1
    assert _found(store, "zinc") == ["Story b"]
    assert store.index_pending() == 0
    _fts_check(store.path)


def test_deleting_items_keeps_the_search_index_whole(store: Store) -> None:
    store.sync_feeds(CONFIGS, NOW)
    gold = store.feeds(["gold"])[0]
    store.apply_poll(gold, update_for(gold.url), [entry("a"), entry("b")], report("gold"), NOW)
    store.index_pending()
    store.apply_poll(gold, update_for(gold.url), [entry("c")], report("gold"), NOW)
    with sqlite3.connect(store.path) as conn:  # one indexed item and one waiting
        conn.execute("DELETE FROM items WHERE entry_key IN ('a', 'c')")
    assert store.index_pending() == 0
    assert _found(store, "rallies") == ["Story b"]
    _fts_check(store.path)


def test_items_left_unindexed_by_a_killed_writer_are_indexed_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "agg.db"
    with Store.open(path) as first:
        first.sync_feeds(CONFIGS, NOW)
        gold = first.feeds(["gold"])[0]
        first.apply_poll(gold, update_for(gold.url), [entry("a")], report("gold"), NOW)
    with Store.open(path) as second:
        assert second.unindexed == 0  # it knows nothing of the first one's writes
        assert second.index_pending() == 1
        assert _found(second, "rallies") == ["Story a"]


def _import_with_chrome(tmp_path: Path, store: Store) -> dict[str, int]:
    """Four archived items of one publisher, three ending in the same disclaimer."""
    archive = tmp_path / "archive.jsonl"
    chrome = "Disclaimer: this page is general information, not investment advice."
    texts = {
        "plain": "Gold rallied on Tuesday as the dollar slipped.\nTraders eyed the Fed.",
        "copper": f"Copper rose for a third day on Chilean supply worries.\n{chrome}",
        "oil": f"Oil fell as inventories grew more than expected.\n{chrome}",
        "wheat": f"Wheat futures eased after rain across the plains.\n{chrome}",
    }
    archive.write_text(
        "".join(
            json.dumps(
                {
                    "id": key,
                    "title": f"{key} today",
                    "url": f"https://desk.example/{key}",
                    "published": (NOW - timedelta(hours=n)).isoformat(),
                    "publisher": "Desk",
                    "text": text,
                }
            )
            + "\n"
            for n, (key, text) in enumerate(texts.items())
        )
    )
    run_import(store, make_settings(tmp_path, []), archive, now=NOW)
    return {item.entry_key: item.id for item in store.items(limit=None)}


def test_signature_text_is_stored_only_where_boilerplate_was_removed(
    tmp_path: Path, store: Store
) -> None:
    ids = _import_with_chrome(tmp_path, store)
    with sqlite3.connect(tmp_path / "agg.db") as conn:
        stored = dict(conn.execute("SELECT item_id, text FROM signatures").fetchall())
    assert stored[ids["plain"]] is None
    assert stored[ids["copper"]] == "Copper rose for a third day on Chilean supply worries."
    members = store.members(ids.values())
    assert members[ids["plain"]][1] == (
        "Gold rallied on Tuesday as the dollar slipped.\nTraders eyed the Fed."
    )
    assert members[ids["oil"]][1] == "Oil fell as inventories grew more than expected."


def test_migration_10_drops_signature_texts_that_repeat_the_body(tmp_path: Path) -> None:
    path = tmp_path / "agg.db"
    with Store.open(path) as store:
        ids = _import_with_chrome(tmp_path, store)
        before = {item_id: text for item_id, (_, text) in store.members(ids.values()).items()}
    # Put the file back as schema 9 left it: every kept text written out, NOT NULL.
    with sqlite3.connect(path) as conn:
        body = (
            "CASE WHEN length(content_text) >= length(summary_text) "
            "THEN content_text ELSE summary_text END"
        )
        conn.executescript(
            f"""
            CREATE TABLE old_signatures (
               item_id INTEGER PRIMARY KEY REFERENCES items(id), published TEXT NOT NULL,
               body BLOB NOT NULL, lead BLOB NOT NULL, text TEXT NOT NULL,
               shingles INTEGER NOT NULL, credits TEXT NOT NULL);
            INSERT INTO old_signatures SELECT s.item_id, s.published, s.body, s.lead,
               coalesce(s.text, (SELECT {body} FROM items WHERE items.id = s.item_id)),
               s.shingles, s.credits FROM signatures s;
            DROP TABLE signatures;
            ALTER TABLE old_signatures RENAME TO signatures;
            CREATE INDEX idx_signatures_published ON signatures (published);
            DELETE FROM schema_migrations WHERE version = 10;
            """
        )
        assert conn.execute("SELECT count(*) FROM signatures WHERE text IS NULL").fetchone() == (0,)
    with Store.open(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        after = {item_id: text for item_id, (_, text) in store.members(ids.values()).items()}
    assert after == before
    with sqlite3.connect(path) as conn:
        stored = dict(conn.execute("SELECT item_id, text FROM signatures").fetchall())
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'signatures'").fetchone()
    assert stored[ids["plain"]] is None and stored[ids["wheat"]] is not None
    assert '"text" TEXT,' in sql
