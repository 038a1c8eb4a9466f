"""Numbered schema migrations, applied in order at start-up; never edit a released one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlite_utils

from aggregator.text.urls import redact_text, redact_url


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


def _m002_syndication(db: sqlite_utils.Database) -> None:
    items = db.table("items")
    for column, kind in (
        ("story_id", int),
        ("parent_id", int),
        ("relation", str),
        ("similarity", float),
        ("containment", float),
        ("lag_seconds", int),
        ("method", str),
    ):
        items.add_column(column, kind)
    # Items stored before detection existed are each the original of their own story.
    db.execute("UPDATE items SET story_id = id, relation = 'original' WHERE story_id IS NULL")
    items.create_index(["story_id"])
    items.create_index(["parent_id"])

    db.table("signatures").create(
        {
            "item_id": int,
            "published": str,
            "body": bytes,
            "lead": bytes,
            "text": str,
            "shingles": int,
            "credits": str,
        },
        pk="item_id",
        foreign_keys=[("item_id", "items", "id")],
        not_null={"published", "body", "lead", "text", "shingles", "credits"},
    )
    db.table("signatures").create_index(["published"])
    db.table("dedup_params").create(
        {"id": int, "params": str, "created_at": str}, pk="id", not_null={"params", "created_at"}
    )
    db.table("feed_lines").create(
        {"feed_id": int, "line": str, "items": int},
        pk=("feed_id", "line"),
        foreign_keys=[("feed_id", "feeds", "id")],
        not_null={"items"},
    )
    db.table("feeds").add_column("learned_items", int, not_null_default=0)


def _m003_site_url(db: sqlite_utils.Database) -> None:
    # The site a feed says it belongs to (<channel><link>): links to it credit the publisher.
    db.table("feeds").add_column("site_url", str)


def _m004_daemon_state(db: sqlite_utils.Database) -> None:
    # One row: what `aggregator status` reports about the daemon.
    db.table("daemon_state").create(
        {
            "id": int,
            "pid": int,
            "host": str,
            "version": str,
            "started_at": str,
            "last_tick_at": str,
            "stopped_at": str,
        },
        pk="id",
    )
    db.table("items").create_index(["first_seen"])


def _m005_search_and_exports(db: sqlite_utils.Database) -> None:
    # Full-text search over titles and bodies, kept in step by triggers. Written as SQL
    # rather than table.enable_fts(): that runs executescript(), which would commit the
    # migration's transaction half-way.
    for statement in (
        "CREATE VIRTUAL TABLE items_fts USING fts5(title, summary_text, content_text, "
        "content='items', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
        "CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN "
        "INSERT INTO items_fts (rowid, title, summary_text, content_text) "
        "VALUES (new.id, new.title, new.summary_text, new.content_text); END",
        "CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary_text, content_text) "
        "VALUES ('delete', old.id, old.title, old.summary_text, old.content_text); END",
        "CREATE TRIGGER items_fts_update AFTER UPDATE OF title, summary_text, content_text "
        "ON items BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary_text, content_text) "
        "VALUES ('delete', old.id, old.title, old.summary_text, old.content_text); "
        "INSERT INTO items_fts (rowid, title, summary_text, content_text) "
        "VALUES (new.id, new.title, new.summary_text, new.content_text); END",
        "INSERT INTO items_fts (items_fts) VALUES ('rebuild')",
    ):
        db.execute(statement)
    # Every write to an item takes the next change number; export cursors remember the
    # last number they wrote out.
    db.table("items").add_column("change_seq", int)
    db.execute("UPDATE items SET change_seq = id")
    db.table("items").create_index(["change_seq"])
    db.table("counters").create({"name": str, "value": int}, pk="name", not_null={"value"})
    db.execute(
        "INSERT INTO counters (name, value) VALUES ('change', (SELECT coalesce(max(id), 0) "
        "FROM items))"
    )
    db.table("cursors").create(
        {"name": str, "seq": int, "updated_at": str, "exported": int},
        pk="name",
        not_null={"seq", "updated_at", "exported"},
    )
    db.table("item_tickers").create(
        {"item_id": int, "ticker": str},
        pk=("item_id", "ticker"),
        foreign_keys=[("item_id", "items", "id")],
    )
    db.table("item_tickers").create_index(["ticker"])


def _m006_body_hash(db: sqlite_utils.Database) -> None:
    # Digest of the last body parsed: an unchanged body is not parsed again.
    db.table("feeds").add_column("body_hash", str)


def _m007_boilerplate_index(db: sqlite_utils.Database) -> None:
    # A feed's boilerplate is its lines counted in enough items; without this the query
    # reads every line the feed ever had (millions after a large import) on each poll.
    db.table("feed_lines").create_index(["feed_id", "items"])


def _m008_entry_hashes(db: sqlite_utils.Database) -> None:
    # Content hashes of the entries in the last document parsed, so that worker
    # processes digest only the entries of a changed document that are new or edited.
    db.table("feeds").add_column("entry_hashes", str)


def _m009_deferred_search_index(db: sqlite_utils.Database) -> None:
    # Items reach the full-text index in batches (Store.index_pending) instead of one
    # trigger call per row: FTS5 takes a batch of thousands at a fifth of the cost per
    # row. An item waits in fts_pending meanwhile; its edits and its deletion touch
    # the index only once it is there. See docs/design.md, "Search index in batches".
    for statement in (
        "CREATE TABLE fts_pending (id INTEGER PRIMARY KEY)",
        "DROP TRIGGER items_fts_insert",
        "DROP TRIGGER items_fts_update",
        "DROP TRIGGER items_fts_delete",
        "CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN "
        "INSERT OR IGNORE INTO fts_pending (id) VALUES (new.id); END",
        "CREATE TRIGGER items_fts_update AFTER UPDATE OF title, summary_text, content_text "
        "ON items WHEN NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id) BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary_text, content_text) "
        "VALUES ('delete', old.id, old.title, old.summary_text, old.content_text); "
        "INSERT INTO fts_pending (id) VALUES (new.id); END",
        "CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN "
        "INSERT INTO items_fts (items_fts, rowid, title, summary_text, content_text) "
        "SELECT 'delete', old.id, old.title, old.summary_text, old.content_text "
        "WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE id = old.id); "
        "DELETE FROM fts_pending WHERE id = old.id; END",
    ):
        db.execute(statement)


# An item's body as the linker reads it: the fuller of its two texts (ParsedEntry.body_text).
BODY_TEXT = (
    "CASE WHEN length(items.content_text) >= length(items.summary_text) "
    "THEN items.content_text ELSE items.summary_text END"
)


def _m010_signature_text_by_reference(db: sqlite_utils.Database) -> None:
    # signatures.text held each item's kept paragraphs again: a fifth of the database
    # when no boilerplate was removed, which is most items. NULL now means "the item's
    # body"; existing copies of it become NULL. SQLite cannot drop a NOT NULL in place.
    for statement in (
        'CREATE TABLE "signatures_new" ('
        '"item_id" INTEGER PRIMARY KEY REFERENCES "items"("id"), '
        '"published" TEXT NOT NULL, "body" BLOB NOT NULL, "lead" BLOB NOT NULL, '
        '"text" TEXT, "shingles" INTEGER NOT NULL, "credits" TEXT NOT NULL)',
        "INSERT INTO signatures_new (item_id, published, body, lead, text, shingles, credits) "
        "SELECT signatures.item_id, signatures.published, signatures.body, signatures.lead, "
        f"CASE WHEN signatures.text = {BODY_TEXT} THEN NULL ELSE signatures.text END, "
        "signatures.shingles, signatures.credits "
        "FROM signatures LEFT JOIN items ON items.id = signatures.item_id",
        "DROP TABLE signatures",
        "ALTER TABLE signatures_new RENAME TO signatures",
        'CREATE INDEX "idx_signatures_published" ON "signatures" ("published")',
    ):
        db.execute(statement)


def _m011_link_score(db: sqlite_utils.Database) -> None:
    # The verdict's score for an item and its parent: NULL for originals, for links
    # made before the score was kept, and for links the verdict did not weigh (a
    # former original re-hung in a merge).
    db.table("items").add_column("score", float)


def _m012_lines_by_story(db: sqlite_utils.Database) -> None:
    # The story sketch of the last item a line was counted for: lines count once per
    # run of items of one story, so a story's own paragraphs are not learned as chrome.
    db.table("feed_lines").add_column("last_story", str)


def _m013_stored_urls_without_credentials(db: sqlite_utils.Database) -> None:
    # Rows written before credentials were kept out of the database: feeds that left the
    # config (sync_feeds rewrites the others) and the fetch log. secure_delete overwrites
    # the freed text, so the secrets do not linger in free pages either.
    conn = db.conn
    conn.execute("PRAGMA secure_delete = ON")
    for table, column, redact in (
        ("feeds", "url", redact_url),
        ("feeds", "config_url", redact_url),
        ("feeds", "last_error", redact_text),
        ("fetches", "url", redact_url),
        ("fetches", "error", redact_text),
    ):
        rows = conn.execute(
            f"SELECT rowid, {column} FROM {table} WHERE {column} LIKE '%://%'"
        ).fetchall()
        changed = [(shown, rowid) for rowid, value in rows if (shown := redact(value)) != value]
        conn.executemany(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", changed)
    # Only for these rewrites: it costs every later delete a page write.
    conn.execute("PRAGMA secure_delete = OFF")


MIGRATIONS: Sequence[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = (
    (1, "initial schema: feeds, items, fetches", _m001_initial),
    (2, "syndication: story links, signatures, feed boilerplate", _m002_syndication),
    (3, "feeds.site_url", _m003_site_url),
    (4, "daemon_state", _m004_daemon_state),
    (5, "full-text search, change numbers, export cursors, tickers", _m005_search_and_exports),
    (6, "feeds.body_hash", _m006_body_hash),
    (7, "index of learned lines by count", _m007_boilerplate_index),
    (8, "feeds.entry_hashes", _m008_entry_hashes),
    (9, "full-text index filled in batches", _m009_deferred_search_index),
    (
        10,
        "signatures.text only where it differs from the item's body",
        _m010_signature_text_by_reference,
    ),
    (11, "items.score: the verdict's score of each link", _m011_link_score),
    (12, "feed_lines.last_story: lines counted once per story", _m012_lines_by_story),
    (13, "stored URLs and errors without credentials", _m013_stored_urls_without_credentials),
)
