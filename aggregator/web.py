"""`aggregator serve`: Datasette over the store, read-only, with the chain as a tree.

The only module that imports datasette (and uvicorn, which serves it). Datasette reads
a file database through `mode=ro` connections; a `prepare_connection` hook also sets
`PRAGMA query_only` on every connection it opens, the write connection included, so
neither a canned query nor a plugin can change the store; any request but
GET/HEAD/OPTIONS is answered 405. The metadata describes
every table and column people see and hides the ones only the aggregator needs. The
Search page reads its words through the store's `fts_query`, as `aggregator search` does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import datasette
import markupsafe
import uvicorn
from datasette.app import Datasette
from datasette.plugins import pm
from datasette.utils.asgi import Request, Response

from aggregator.errors import UsageError
from aggregator.store.queries import fts_query
from aggregator.store.views import check_schema

F = TypeVar("F", bound=Callable[..., Any])
# datasette's hookimpl marker is untyped; this keeps the hooks' own signatures checked.
hookimpl = cast(Callable[[F], F], datasette.hookimpl)

PLUGIN = "aggregator"
TEMPLATES = Path(__file__).resolve().parent / "templates"
CHAIN_PATH = "/-/chain/{}"
# The SQL function the search query reads its text through: `aggregator search`'s own
# translation, so the page and the command find the same items for the same words.
MATCH_FUNCTION = "aggregator_match"

_TIME = "UTC, ISO 8601"

# title, description, column descriptions. Every column of a shown table is described:
# tests/test_web.py fails when a migration adds one that is not.
TABLES: dict[str, tuple[str, str, dict[str, str]]] = {
    "items": (
        "Items",
        "Every entry of every feed, kept once per feed; copies of one story point at "
        "their story's original (story_id) and at the item they most likely came from "
        "(parent_id).",
        {
            "id": "Item number.",
            "feed_id": "The feed it came from.",
            "entry_key": "Stable key within the feed: guid, else canonical link, else a hash.",
            "guid": "The feed's own id for the entry, if it gave one.",
            "url": "Link to the article as the feed gave it.",
            "canonical_url": "The link without tracking parameters or fragment.",
            "title": "Headline.",
            "author": "Author, if the feed names one.",
            "published": f"When it was published ({_TIME}); first seen if the feed has no date.",
            "published_from_feed": "1 if the feed dated the entry, 0 if it is first_seen.",
            "updated": f"The feed's updated time for the entry ({_TIME}).",
            "summary_html": "Summary as HTML, as the feed sent it.",
            "summary_text": "Summary as plain text.",
            "content_html": "Full content as HTML, if the feed carries it.",
            "content_text": "Full content as plain text.",
            "categories": "The feed's categories for the entry (JSON list).",
            "content_hash": "Digest of the stored content: a change means a new revision.",
            "first_seen": f"When a poll first stored it ({_TIME}).",
            "last_seen": f"When a poll last saw it in the feed ({_TIME}).",
            "updated_at": f"When it was last written ({_TIME}).",
            "revisions": "How many times the entry changed after it was first stored.",
            "story_id": "The story's original item (its own id for an original).",
            "parent_id": "The item this copy most likely came from; empty for an original.",
            "relation": "original, syndicated (another publisher's copy), version (same "
            "publisher, corrected) or duplicate.",
            "similarity": "Estimated Jaccard similarity of the bodies with the parent (0-1).",
            "containment": "Share of the shorter body found in the longer one (0-1).",
            "score": "The copy verdict's score for the item and its parent (0-1); "
            "empty for an original.",
            "lag_seconds": "Seconds from the parent's publication to this copy's.",
            "method": "The signal that chose the parent: attribution, published, "
            "first_seen or merge.",
            "change_seq": "Change number of the last write (export cursors read it).",
        },
    ),
    "feeds": (
        "Feeds",
        "The configured feeds with their polling state; a failing feed's error is kept here.",
        {
            "id": "Feed number.",
            "name": "Slug used on the command line.",
            "publisher": "Who publishes the feed.",
            "url": "Where it is fetched now (follows permanent redirects).",
            "config_url": "The URL in config.toml.",
            "tags": "Tags from config.toml (JSON list).",
            "active": "0 once the feed answered 410 Gone.",
            "in_config": "0 if the feed was removed from config.toml (its items are kept).",
            "etag": "ETag sent back on the next conditional GET.",
            "last_modified": "Last-Modified sent back on the next conditional GET.",
            "error_count": "Consecutive failed polls (0 when the last one worked).",
            "last_error": "What went wrong in the last failed poll.",
            "last_status": "HTTP status of the last poll.",
            "last_polled_at": f"When it was last polled ({_TIME}).",
            "next_check_at": f"When it is due again ({_TIME}).",
            "retry_after_until": f"Not before this time: the server's Retry-After ({_TIME}).",
            "bozo_warning": "Why the last body was not well-formed, though still used.",
            "created_at": f"When the feed was added ({_TIME}).",
            "learned_items": "Items the feed's boilerplate lines were learned from.",
            "site_url": "The site the feed says it belongs to.",
            "body_hash": "Digest of the last body parsed: an identical body is skipped.",
            "entry_hashes": "Content-hash prefixes of the entries in the last document parsed.",
        },
    ),
    "fetches": (
        "Fetches",
        "One row per poll of a feed: what came back and how long it took.",
        {
            "id": "Fetch number.",
            "feed_id": "The feed polled.",
            "started_at": f"When the poll started ({_TIME}).",
            "url": "The URL fetched.",
            "outcome": "ok, not_modified, gone, http_error, timeout, network_error, "
            "too_large or refused.",
            "status": "HTTP status, if a response came.",
            "bytes": "Body size after decompression (bytes).",
            "items_seen": "Entries in the feed.",
            "items_new": "Entries stored for the first time.",
            "items_updated": "Stored entries whose content changed.",
            "duration": "Time the poll took (seconds).",
            "error": "What went wrong, if anything.",
            "warning": "A parse warning for a body that was still used.",
        },
    ),
    "item_tickers": (
        "Tickers",
        "Instruments an item mentions: cashtags, exchange tags, FX pairs, crypto.",
        {"item_id": "The item.", "ticker": "Normalised symbol, e.g. AAPL or EUR/USD."},
    ),
    "daemon_state": (
        "Daemon state",
        "What `aggregator status` reports about the daemon (one row).",
        {
            "id": "Always 1.",
            "pid": "Process id of the last daemon.",
            "host": "Host it ran on.",
            "version": "Aggregator version it ran.",
            "started_at": f"When it started ({_TIME}).",
            "last_tick_at": f"Its last scheduling tick ({_TIME}).",
            "stopped_at": f"When it stopped cleanly; empty while running or after a crash "
            f"({_TIME}).",
        },
    ),
}

# Internal bookkeeping: shown to nobody, described for whoever opens the file directly.
HIDDEN: dict[str, str] = {
    "signatures": "MinHash signatures and shingle counts used to find copies.",
    "schema_migrations": "Schema migrations applied to this file.",
    "dedup_params": "The [dedup] parameters the signatures were computed with.",
    "feed_lines": "Boilerplate lines learned per feed.",
    "counters": "Change counter behind items.change_seq.",
    "cursors": "Export cursors: the last change each named export wrote.",
    "items_fts": "Full-text index of titles and bodies (use the search query).",
    "fts_pending": "Items written since the full-text index was last brought up to date.",
}

_STORY_ROWS = """
SELECT o.id AS story, o.published, f.publisher AS first_publisher, o.title,
  count(i.id) - 1 AS copies,
  (SELECT group_concat(publisher, ', ') FROM (SELECT DISTINCT pf.publisher FROM items AS s
     JOIN feeds AS pf ON pf.id = s.feed_id WHERE s.story_id = o.id ORDER BY pf.publisher))
    AS publishers,
  CASE WHEN count(i.id) > 1 THEN
    CAST(round((julianday(max(i.published)) - julianday(o.published)) * 1440) AS INTEGER)
  END AS minutes_to_last_copy
FROM items AS o
JOIN feeds AS f ON f.id = o.feed_id
JOIN items AS i ON i.story_id = o.id
WHERE o.story_id = o.id
GROUP BY o.id
HAVING count(i.id) - 1 >= CAST(coalesce(nullif(:min_copies, ''), '0') AS INTEGER)
ORDER BY o.published DESC, o.id DESC
LIMIT 500
"""

_CHAIN_ROWS = """
SELECT i.id, i.parent_id AS parent, i.relation, f.publisher, i.published,
  CAST(round(i.lag_seconds / 60.0) AS INTEGER) AS lag_minutes,
  round(i.similarity, 2) AS similarity, round(i.containment, 2) AS containment, i.method,
  i.title, i.url
FROM items AS i JOIN feeds AS f ON f.id = i.feed_id
WHERE i.story_id = (SELECT story_id FROM items WHERE id = CAST(:item AS INTEGER))
ORDER BY i.published, i.first_seen, i.id
"""

CANNED_QUERIES: dict[str, dict[str, Any]] = {
    "latest_stories": {
        "title": "Latest stories",
        "description": "One row per story, newest original first: who published it first, "
        "how many copies, every publisher that carried it and minutes from the original to "
        "its last copy. Set min_copies to 1 for syndicated stories only.",
        "sql": _STORY_ROWS.strip(),
    },
    "story_chain": {
        "title": "One story's chain",
        "description": "Every item of the story the given item belongs to, oldest first, "
        "with its parent, relation, lag from the parent (minutes) and similarity. The "
        "chain page (story column elsewhere) draws it as a tree.",
        "sql": _CHAIN_ROWS.strip(),
    },
    "search": {
        "title": "Search",
        "description": "Full-text search over titles and bodies, best matches first, read "
        "as `aggregator search` reads it: plain words must all appear (EUR/USD, S&P 500 and "
        '$0.87 are words too); FTS5 syntax works: "a phrase", OR, NOT, prefix*. «» mark the '
        "match.",
        "sql": f"""
SELECT items.id, items.published, feeds.publisher, items.relation, items.story_id AS story,
  snippet(items_fts, -1, '«', '»', '…', 16) AS snippet, items.title
FROM items_fts
JOIN items ON items.id = items_fts.rowid
JOIN feeds ON feeds.id = items.feed_id
WHERE items_fts MATCH coalesce(nullif({MATCH_FUNCTION}(:q), ''), '""')
ORDER BY bm25(items_fts, 5.0, 1.0, 1.0)
LIMIT 100
""".strip(),
    },
    "feeds_in_error": {
        "title": "Feeds in error",
        "description": "Configured feeds whose last poll failed or that are gone (410), "
        "most consecutive errors first.",
        "sql": """
SELECT name, publisher, CASE WHEN active THEN 'active' ELSE 'gone' END AS state,
  error_count, last_status, last_error, last_polled_at, next_check_at
FROM feeds
WHERE in_config = 1 AND (error_count > 0 OR active = 0)
ORDER BY error_count DESC, name
""".strip(),
    },
    "syndication_matrix": {
        "title": "Syndication matrix",
        "description": "Who copies whom: syndicated copies per pair of publishers (source "
        "copied, copier copying) with the lag from original to copy in minutes.",
        "sql": """
SELECT pf.publisher AS source, cf.publisher AS copier, count(*) AS copies,
  CAST(round(min(c.lag_seconds) / 60.0) AS INTEGER) AS min_lag_minutes,
  CAST(round(avg(c.lag_seconds) / 60.0) AS INTEGER) AS mean_lag_minutes,
  CAST(round(max(c.lag_seconds) / 60.0) AS INTEGER) AS max_lag_minutes
FROM items AS c
JOIN items AS p ON p.id = c.parent_id
JOIN feeds AS cf ON cf.id = c.feed_id
JOIN feeds AS pf ON pf.id = p.feed_id
WHERE c.relation = 'syndicated'
GROUP BY pf.publisher, cf.publisher
ORDER BY copies DESC, source, copier
""".strip(),
    },
}


def metadata(database: str) -> dict[str, Any]:
    """Datasette metadata for the store opened under the name `database`."""
    tables: dict[str, Any] = {
        name: {"title": title, "description": text, "columns": columns}
        for name, (title, text, columns) in TABLES.items()
    }
    tables.update({name: {"hidden": True, "description": text} for name, text in HIDDEN.items()})
    tables["items"].update({"fts_table": "items_fts", "fts_pk": "id", "sort_desc": "published"})
    tables["fetches"]["sort_desc"] = "started_at"
    return {
        "title": "Financial news: stories and syndication",
        "description": "Every item the aggregator stored, the stories they belong to and who "
        "copied whom. Read-only. Start with Latest stories; a story number opens its chain.",
        "databases": {
            database: {
                "description": "The aggregator's store, opened read-only.",
                "tables": tables,
                # The answer first; "show" reveals the SQL.
                "queries": {k: {**q, "hide_sql": True} for k, q in CANNED_QUERIES.items()},
            }
        },
        "plugins": {PLUGIN: {"database": database}},
    }


# -- the chain page -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainItem:
    id: int
    parent: int | None
    relation: str
    publisher: str
    published: str
    lag_minutes: int | None
    similarity: float | None
    containment: float | None
    method: str | None
    title: str
    url: str | None


@dataclass(frozen=True, slots=True)
class ChainNode:
    item: ChainItem
    depth: int


def chain_tree(items: Sequence[ChainItem]) -> list[ChainNode]:
    """Depth-first: the original first, each copy right under its parent, one level deeper.

    An item whose parent is not in the story (re-linked away) is shown as a root so
    nothing disappears from the page.
    """
    ids = {item.id for item in items}
    children: dict[int | None, list[ChainItem]] = {}
    for item in items:
        children.setdefault(item.parent if item.parent in ids else None, []).append(item)
    nodes: list[ChainNode] = []
    stack = [(root, 0) for root in reversed(children.get(None, []))]
    while stack:
        item, depth = stack.pop()
        nodes.append(ChainNode(item, depth))
        stack += [(child, depth + 1) for child in reversed(children.get(item.id, []))]
    return nodes


def lag_text(minutes: int | None) -> str:
    if minutes is None:
        return ""
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if hours == 0:
        return f"{sign}{rest} min"
    if hours < 48:
        return f"{sign}{hours} h {rest:02d} min"
    return f"{sign}{hours // 24} d {hours % 24} h"


class AggregatorPlugin:
    """Datasette hooks, registered in-process (no entry point needed)."""

    @staticmethod
    @hookimpl
    def prepare_connection(conn: Any, database: str, datasette: Datasette) -> None:
        if database == _database_name(datasette):
            conn.execute("PRAGMA query_only = 1")
            conn.create_function(MATCH_FUNCTION, 1, _match_text, deterministic=True)

    @staticmethod
    @hookimpl
    def asgi_wrapper() -> Callable[[Any], Any]:
        return _refuse_writes

    @staticmethod
    @hookimpl
    def register_routes() -> list[tuple[str, Callable[..., Any]]]:
        return [(r"^/-/chain/(?P<item_id>[0-9]+)$", _chain_page)]

    @staticmethod
    @hookimpl
    def render_cell(value: object, column: str, database: str, datasette: Datasette) -> Any:
        if database != _database_name(datasette) or column not in ("story", "story_id"):
            return None
        if not isinstance(value, int):
            return None
        href = datasette.urls.path(CHAIN_PATH.format(value))
        return markupsafe.Markup('<a href="{}" title="the story as a tree">{}</a>').format(
            href, value
        )


def _match_text(query: object) -> str:
    """The search form's text as an FTS5 query, the way the CLI reads it ('' for none)."""
    return fts_query(query) if isinstance(query, str) else ""


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _refuse_writes(app: Any) -> Any:
    """Every request that could change something is refused before Datasette sees it.

    Datasette 0.65 has no write API, but a POST to a canned query reaches code that
    answers 500; a plain 405 says what is going on.
    """

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in _READ_METHODS:
            body = b"aggregator serve is read-only: only GET requests are answered\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"allow", b"GET, HEAD, OPTIONS"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guarded


def _database_name(datasette: Datasette) -> str | None:
    config = datasette.plugin_config(PLUGIN) or {}
    name = config.get("database")
    return name if isinstance(name, str) else None


async def _chain_page(request: Request, datasette: Datasette) -> Response:
    name = _database_name(datasette)
    assert name is not None, "metadata names the database"
    item_id = int(request.url_vars["item_id"])
    result = await datasette.get_database(name).execute(_CHAIN_ROWS, {"item": item_id})
    items = [ChainItem(**dict(row)) for row in result.rows]
    if not items:
        return Response.html(
            await datasette.render_template(
                "chain.html", {"item_id": item_id, "nodes": [], "database": name}, request=request
            ),
            status=404,
        )
    nodes = chain_tree(items)
    context = {
        "item_id": item_id,
        "database": name,
        "nodes": nodes,
        "original": nodes[0].item,
        "publishers": len({item.publisher for item in items}),
        "lag_text": lag_text,
        "table_url": datasette.urls.query(name, "story_chain") + f"?item={item_id}",
    }
    return Response.html(await datasette.render_template("chain.html", context, request=request))


def build(db_path: Path) -> Datasette:
    """A Datasette app over the store, read-only, with our metadata, page and hooks."""
    check_schema(db_path)
    if pm.get_plugin(PLUGIN) is None:
        pm.register(AggregatorPlugin, name=PLUGIN)
    name = db_path.stem
    return Datasette(
        files=[str(db_path)],
        metadata=metadata(name),
        template_dir=str(TEMPLATES),
        settings={"allow_download": False, "sql_time_limit_ms": 3000},
    )


def serve(db_path: Path, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve until interrupted; `ready` gets the base URL once the socket listens.

    Port 0 picks a free port (the URL says which). The socket is bound here, not by
    uvicorn, so a port in use is one clear error instead of a logged traceback.
    """
    app = build(db_path)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    server = uvicorn.Server(uvicorn.Config(app.app(), log_level="warning", access_log=False))
    ready(f"http://{shown}:{bound}/")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
