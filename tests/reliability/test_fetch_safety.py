"""Issue 17, round two: truncated compressed bodies, over-long entry fields, and
permanent redirects to targets that fail.

Real parts throughout: an HTTP server on 127.0.0.1 (pytest-httpserver, which sets
Content-Length to what it sends), a SQLite file in tmp_path, and the `aggregator`
CLI in a subprocess where what matters is what a later run finds in the database.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import parse
from aggregator.models import FetchOutcome, PollReport, Settings
from aggregator.pipeline import poll
from aggregator.store import Store
from tests.feeds import NOW, make_settings, market_items, rss
from tests.reliability.checks import executable_markup

EXE = str(Path(sys.executable).parent / "aggregator")


def one_feed(tmp_path: Path, url: str) -> Settings:
    return make_settings(tmp_path, [{"name": "desk", "publisher": "Desk", "url": url}])


def poll_once(store: Store, settings: Settings) -> PollReport:
    (report,) = poll(store, settings, everything=True, clock=lambda: NOW)
    return report


def cli_poll(tmp_path: Path, url: str) -> dict[str, object]:
    """`aggregator poll --all --json` in a subprocess; its one report line."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "agg.db"\n\n[polling]\ninterval = "15m"\ntimeout = "5s"\n\n'
        f'[[feeds]]\nname = "desk"\npublisher = "Desk"\nurl = "{url}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    # subprocess.run kills the child if it outlives the timeout: none is left behind.
    result = subprocess.run(
        [EXE, "--config", str(config), "poll", "--all", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stdout.splitlines()
    report: dict[str, object] = json.loads(line)
    return report


def db_rows(db: Path, query: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(query).fetchall()


# --- 1. A truncated compressed body is a fetch error, never a shorter feed -------------


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _brotli(data: bytes) -> bytes:
    brotli = pytest.importorskip("brotli")
    packed: bytes = brotli.compress(data)
    return packed


# Content-Encoding sent, and how the body is packed for it.
ENCODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    # "deflate" as some servers send it: without the zlib wrapper.
    "deflate-raw": ("deflate", _raw_deflate),
    "br": ("br", _brotli),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_truncated_compressed_body_is_a_fetch_error_and_the_whole_one_is_stored_next(
    httpserver: HTTPServer, tmp_path: Path, store: Store, name: str
) -> None:
    encoding, pack = ENCODINGS[name]
    before = pack(rss(market_items(10)))
    whole = pack(rss(market_items(50)))
    # Served in turn: the feed as it was, the new version cut in half (its
    # Content-Length saying half: the connection itself ends in good order), the
    # new version whole.
    served = [
        (before, '"v1"', "Tue, 24 Nov 2026 08:00:00 GMT"),
        (whole[: len(whole) // 2], '"v2"', "Wed, 25 Nov 2026 08:00:00 GMT"),
        (whole, '"v2"', "Wed, 25 Nov 2026 08:00:00 GMT"),
    ]
    asked_with: list[str | None] = []

    def handler(request: Request) -> Response:
        asked_with.append(request.headers.get("If-None-Match"))
        payload, etag, last_modified = served[len(asked_with) - 1]
        return Response(
            payload,
            headers={
                "Content-Type": "application/rss+xml",
                "Content-Encoding": encoding,
                "ETag": etag,
                "Last-Modified": last_modified,
            },
        )

    httpserver.expect_request("/feed").respond_with_handler(handler)
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))

    first = poll_once(store, settings)
    assert (first.outcome, first.items_new) == (FetchOutcome.OK, 10)
    good = store.feeds()[0]

    cut = poll_once(store, settings)
    assert cut.outcome is FetchOutcome.NETWORK_ERROR, (cut.outcome, cut.error, cut.items_new)
    assert "truncated" in (cut.error or ""), cut.error
    assert (cut.items_seen, cut.items_new, cut.items_updated) == (0, 0, 0)
    assert store.count("items") == 10
    feed = store.feeds()[0]
    assert feed.last_error == cut.error
    # Left as they were, so the next poll asks for the body again and parses it whole.
    assert (feed.etag, feed.last_modified, feed.body_hash) == (
        good.etag,
        good.last_modified,
        good.body_hash,
    )

    again = poll_once(store, settings)
    assert asked_with == [None, '"v1"', '"v1"']
    assert (again.outcome, again.items_new, again.error) == (FetchOutcome.OK, 40, None)
    assert store.count("items") == 50
    assert store.feeds()[0].etag == '"v2"'
    bodies = db_rows(store.path, "SELECT summary_text FROM items")
    assert all(row["summary_text"].startswith("Copper rose") for row in bodies)


def test_whole_brotli_body_is_read_to_its_end(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    """The decoder holds output back after the last network read; all of it is stored.

    Uncapped by its end, the body below was read as its first 98,272 bytes: a shorter
    feed with a parser warning.
    """
    brotli = pytest.importorskip("brotli")
    items = [
        dict(item, body=f"<p>{f'Copper rose {n} per cent on the LME. ' * 300}</p>")
        for n, item in enumerate(market_items(20))
    ]
    body = rss(items)
    assert len(body) > 200_000
    httpserver.expect_request("/feed").respond_with_data(
        brotli.compress(body),
        headers={"Content-Encoding": "br"},
        content_type="application/rss+xml",
    )
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    assert (report.outcome, report.error, report.warning) == (FetchOutcome.OK, None, None)
    assert (report.bytes_read, report.items_new) == (len(body), 20)


# --- 11. Every stored field of an entry has a cap ---------------------------------------

LONG_GUID = "g" * 2_000_000


def overlong_feed(extra_items: str = "") -> bytes:
    """Two entries whose 2 MB guids differ only in their last character (~6.5 MB)."""
    first = (
        f"<item><guid isPermaLink='false'>{LONG_GUID}A</guid>"
        f"<title>{'Markets ' * 250_000}</title>"
        f"<link>https://hostile.example/{'a' * 2_000_000}</link>"
        f"<author>{'x' * 2_000}</author>"
        + "".join(f"<category>{n}{'c' * 1000}</category>" for n in range(300))
        + "<description>Short body A.</description></item>"
    )
    second = (
        f"<item><guid isPermaLink='false'>{LONG_GUID}B</guid><title>Second</title>"
        "<link>https://hostile.example/b</link><description>Short body B.</description></item>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Hostile</title><link>https://hostile.example/</link>"
        f"{first}{second}{extra_items}</channel></rss>"
    ).encode()


def database_bytes(tmp_path: Path) -> int:
    return sum(path.stat().st_size for path in tmp_path.glob("agg.db*"))


def test_multi_megabyte_guid_link_and_title_are_capped_and_warned(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    bodies = [overlong_feed(), overlong_feed("<item><guid>small</guid><title>C</title></item>")]
    httpserver.expect_ordered_request("/feed").respond_with_data(
        bodies[0], content_type="application/rss+xml"
    )
    httpserver.expect_ordered_request("/feed").respond_with_data(
        bodies[1], content_type="application/rss+xml"
    )
    url = httpserver.url_for("/feed")
    db = tmp_path / "agg.db"

    report = cli_poll(tmp_path, url)
    assert (report["outcome"], report["items_new"], report["error"]) == ("ok", 2, None)
    # An empty database is ~150 KB; uncapped, the two guids, the link and its
    # canonical form (indexed) came to over 10 MB.
    assert database_bytes(tmp_path) < 1_000_000, database_bytes(tmp_path)
    warning = str(report["warning"])
    assert "2 entries with over-long fields cut" in warning, warning
    for field in ("title", "author", "categories", "guid", "link"):
        assert field in warning, (field, warning)

    items = db_rows(db, "SELECT * FROM items ORDER BY id")
    assert len(items) == 2
    # Whatever the column, nothing of these entries is stored at anything like its size.
    longest = max(
        (len(str(value)), column) for item in items for column, value in dict(item).items()
    )
    assert longest[0] <= 25_000, longest
    # Both guids are cut to the same text, but keys come from the whole guids: two
    # entries, never one.
    assert items[0]["guid"] == items[1]["guid"]
    assert items[0]["entry_key"] != items[1]["entry_key"]
    for item in items:
        assert len(item["guid"]) <= parse.MAX_GUID_LENGTH and item["guid"].startswith("ggg")
        assert len(item["entry_key"]) <= 512
    first, second = items
    # A link too long to open is dropped, not cut into a link to some other page.
    assert (first["url"], first["canonical_url"]) == (None, None)
    assert second["url"] == "https://hostile.example/b"
    assert 0 < len(first["title"]) <= parse.MAX_TITLE_LENGTH
    assert 0 < len(first["author"]) <= parse.MAX_AUTHOR_LENGTH
    categories = json.loads(first["categories"])
    assert len(categories) == parse.MAX_CATEGORIES
    assert all(len(term) <= parse.MAX_CATEGORY_LENGTH for term in categories)
    # The warning is recorded where parse warnings are: on the feed and the fetch.
    (feed,) = db_rows(db, "SELECT bozo_warning FROM feeds")
    (fetch,) = db_rows(db, "SELECT warning FROM fetches")
    assert feed["bozo_warning"] == fetch["warning"] == warning

    # The next version, with one entry more: the capped two are recognised, not re-added.
    report = cli_poll(tmp_path, url)
    assert (report["outcome"], report["items_new"], report["items_updated"]) == ("ok", 1, 0)
    assert len(db_rows(db, "SELECT id FROM items")) == 3
    assert database_bytes(tmp_path) < 1_000_000, database_bytes(tmp_path)


def test_overlong_summary_and_content_are_cut_outside_any_tag_and_warned(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    paragraph = '<p>Copper rose &amp; fell on <a href="https://news.example/lme">the LME</a>.</p>'
    # About 1.5 MB each: longer than any article, under the 10 MB body cap together.
    summary = paragraph * 20_000
    content = "<p>Full text.</p>" * 90_000
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>T</title>'
        "<item><guid>long-body</guid><title>Long</title>"
        f"<description><![CDATA[{summary}]]></description>"
        f"<content:encoded><![CDATA[{content}]]></content:encoded></item></channel></rss>"
    ).encode()
    httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")

    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    assert (report.outcome, report.items_new) == (FetchOutcome.OK, 1)
    assert "1 entry with over-long fields cut to their caps (summary, content)" in (
        report.warning or ""
    ), report.warning
    (item,) = db_rows(store.path, "SELECT * FROM items")
    for column in ("summary_text", "content_text"):
        assert 0 < len(item[column]) <= parse.MAX_CONTENT_LENGTH, column
    for column in ("summary_html", "content_html"):
        stored = item[column]
        assert 0.9 * parse.MAX_CONTENT_LENGTH < len(stored) <= parse.MAX_CONTENT_LENGTH, column
        assert stored.endswith("…")
        # Cut between tags and references, never inside one.
        tag, reference = stored.rfind("<"), stored.rfind("&")
        assert tag < 0 or ">" in stored[tag:], stored[-200:]
        assert reference < 0 or ";" in stored[reference:], stored[-200:]
    assert executable_markup(store.path) == []


# --- 12. A permanent redirect moves the feed only when its target answered ------------


@pytest.mark.parametrize(
    ("status", "moves"),
    [(401, False), (404, False), (500, False), (200, True)],
    ids=["401", "404", "500", "200"],
)
def test_permanent_redirect_moves_the_feed_only_to_a_target_that_answered(
    httpserver: HTTPServer, tmp_path: Path, status: int, moves: bool
) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(
        rss(market_items(2)) if status == 200 else "no", status=status
    )
    old, new = httpserver.url_for("/old"), httpserver.url_for("/new")
    db = tmp_path / "agg.db"

    first = cli_poll(tmp_path, old)
    assert first["outcome"] == ("ok" if moves else "http_error"), first
    (feed,) = db_rows(db, "SELECT url, config_url FROM feeds")
    assert (feed["url"], feed["config_url"]) == (new if moves else old, old)

    cli_poll(tmp_path, old)
    paths = [request.path for request, _ in httpserver.log]
    assert paths == (["/old", "/new", "/new"] if moves else ["/old", "/new", "/old", "/new"])
    (feed,) = db_rows(db, "SELECT url FROM feeds")
    assert feed["url"] == (new if moves else old)


def test_permanent_redirect_answered_with_304_moves_the_feed(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    """The feed, already stored, moves; the new home says it is unchanged."""
    paths: list[str] = []

    def handler(request: Request) -> Response:
        paths.append(request.path)
        if len(paths) == 1:
            return Response(rss(market_items(2)), headers={"ETag": '"v1"'})
        if request.path == "/old":
            return Response("", status=301, headers={"Location": "/new"})
        assert request.headers.get("If-None-Match") == '"v1"'
        return Response("", status=304, headers={"ETag": '"v1"'})

    httpserver.expect_request("/old").respond_with_handler(handler)
    httpserver.expect_request("/new").respond_with_handler(handler)
    settings = one_feed(tmp_path, httpserver.url_for("/old"))

    assert poll_once(store, settings).items_new == 2
    moved = poll_once(store, settings)
    assert (moved.outcome, moved.error) == (FetchOutcome.NOT_MODIFIED, None)
    assert store.feeds()[0].url == httpserver.url_for("/new")
    poll_once(store, settings)
    assert paths == ["/old", "/old", "/new", "/new"]


def test_long_author_names_do_not_hold_the_parser(httpserver: HTTPServer, tmp_path: Path) -> None:
    # feedparser's e-mail pattern takes time in the square of an author's length: 100 KB
    # cost a minute, so these 20 entries held one poll for ~40 minutes. The bound here is
    # the subprocess's own (120 s), far above the second or two the poll takes now.
    name = "x" * 100_000
    items = "".join(
        f"<item><guid>p{n}</guid><title>Item {n}</title><author>{name}</author>"
        f'<dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/"><![CDATA[{name}]]>'
        f"</dc:creator><description>Body {n}.</description></item>"
        for n in range(20)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>People</title>{items}</channel></rss>"
    ).encode()
    httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")
    report = cli_poll(tmp_path, httpserver.url_for("/feed"))
    assert (report["outcome"], report["items_new"]) == ("ok", 20)
    authors = db_rows(tmp_path / "agg.db", "SELECT author FROM items")
    assert all(0 < len(row["author"]) <= parse.MAX_AUTHOR_LENGTH for row in authors)
