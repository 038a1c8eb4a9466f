"""Every hostile case from docs/reliability.md, polled for real from a faulty server.

Each case is polled next to a well-behaved feed on another host name. The poll
must end within its timeout plus a small margin, the well-behaved feed must not
wait for the hostile one, the hostile feed gets a clear `last_error` (or its
usable entries, cleaned), and nothing stored may contain executable markup.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import brotli
import pytest

from aggregator.models import FetchOutcome, PollReport
from aggregator.parse import MAX_ENTRIES, MAX_TITLE_LENGTH
from aggregator.pipeline import poll
from aggregator.store import Store
from tests.feeds import NOW, make_settings, market_items, rfc822, rss
from tests.reliability import faultserver as fs
from tests.reliability.checks import executable_markup

SOAK = bool(os.environ.get("AGGREGATOR_SOAK"))
TIMEOUT = 2.0
# Thread start-up, parsing and storing on a shared two-core CI machine.
MARGIN = 1.5
MAX_BYTES = 10_000_000
# Less than the fastest uncapped run of test_many_identical_entries_are_stored_...
UNCAPPED_BELOW = 12.0


@pytest.fixture(scope="module")
def server() -> Iterator[fs.FaultServer]:
    served = fs.FaultServer()
    yield served
    served.close()


def feed(items: str, *, declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return (
        f'{declaration}<rss version="2.0"><channel><title>Hostile</title>'
        f"<link>https://hostile.example/</link>{items}</channel></rss>"
    ).encode()


def item(guid: str, title: str = "A story", body: str = "<p>Body text.</p>", date: str = "") -> str:
    pub = f"<pubDate>{date}</pubDate>" if date else ""
    return (
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{title}</title>"
        f"<link>https://hostile.example/{guid}</link>{pub}"
        f"<description><![CDATA[{body}]]></description></item>"
    )


@functools.cache
def gzip_bomb() -> bytes:
    """About 250 KB that inflate to 256 MiB of zeros (the body cap is 10 MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


@functools.cache
def brotli_bomb() -> bytes:
    """About 1.6 KB that inflate to 1 GiB."""
    packer = brotli.Compressor(quality=5)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.process(zeros) for _ in range(1024)), packer.finish()])


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b']><rss version="2.0"><channel><title>&lol9;</title>'
    b"<item><guid>1</guid><title>&lol9;</title></item></channel></rss>"
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "'
    + b"x" * 100_000
    + b'">]><rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>'
    + b"&big;" * 20_000
    + b"</title></item></channel></rss>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>&secret;</title>'
    b"</item></channel></rss>"
)
MARKUP = feed(
    item(
        "cdata",
        body='<p>Shares rose.</p><script>alert(1)</script><iframe src="https://evil.example/">'
        '</iframe><img src="https://hostile.example/x.png" onerror="alert(2)">'
        '<a href="javascript:alert(3)">more</a><svg onload="alert(4)"></svg>'
        '<object data="x.swf"></object><embed src="x.swf">',
    )
    + "<item><guid isPermaLink='false'>escaped</guid>"
    "<title>&amp;lt;script&amp;gt;alert(5)&amp;lt;/script&amp;gt;"
    "</title><description>&amp;lt;iframe src=x&amp;gt;&amp;lt;img src=x onerror=alert(6)&amp;gt;"
    "</description></item>" + item("title-tag", title="&lt;img src=x onerror=alert(7)&gt;Title")
)
ATOM_TEXT = (
    b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
    b"<id>urn:hostile</id><entry><id>urn:text</id><title type='text'>&lt;b&gt;T&lt;/b&gt;</title>"
    b"<updated>2026-11-20T00:00:00Z</updated>"
    b"<summary type='text'>&lt;script&gt;alert(8)&lt;/script&gt;</summary>"
    b"<content type='text'>&lt;iframe src=x&gt;&lt;/iframe&gt; onerror=alert(9)</content>"
    b"</entry></feed>"
)
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
    b"<body><h1>Our new site</h1><p>The feed moved.</p></body></html>"
)


def huge_feed(entries: int, body: str | None = None) -> bytes:
    """`entries` small items (8 MB for 100,000: under the body cap)."""
    return feed(
        "".join(
            f"<item><guid>g{n}</guid><description>{body or f'w{n}a w{n}b w{n}c'}</description>"
            "</item>"
            for n in range(entries)
        )
    )


@dataclass(frozen=True)
class Case:
    handler: Callable[[], fs.Handler]
    outcome: FetchOutcome
    # A pattern the feed's last_error must match; None: the poll must succeed.
    error: str | None = None
    check: Callable[[Store, Path], None] | None = None


def stored(store: Store) -> list[sqlite3.Row]:
    with sqlite3.connect(store.path) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(
            "SELECT items.* FROM items JOIN feeds ON feeds.id = feed_id "
            "WHERE feeds.name = 'hostile'"
        ).fetchall()


def one_warned_entry_cap(store: Store, db: Path) -> None:
    assert len(stored(store)) == MAX_ENTRIES
    warning = store.feeds(["hostile"])[0].bozo_warning or ""
    assert f"more than {MAX_ENTRIES} entries" in warning


def title_capped(store: Store, db: Path) -> None:
    (row,) = stored(store)
    assert 0 < len(row["title"]) <= MAX_TITLE_LENGTH


def no_nul(store: Store, db: Path) -> None:
    rows = stored(store)
    assert rows
    for row in rows:
        for key in row.keys():  # noqa: SIM118 - sqlite3.Row has no items()
            value = row[key]
            assert not (isinstance(value, str) and "\x00" in value), key


def readable_text(expected: str) -> Callable[[Store, Path], None]:
    def check(store: Store, db: Path) -> None:
        titles = [row["title"] for row in stored(store)]
        assert any(expected in title for title in titles), titles

    return check


def markup_neutralised(store: Store, db: Path) -> None:
    rows = {row["guid"]: row for row in stored(store)}
    assert "Shares rose." in rows["cdata"]["summary_text"]
    assert "alert(1)" not in rows["cdata"]["summary_text"]
    # Escaped markup is kept as the text it is, but can no longer be read as a tag.
    assert "alert(5)" in rows["escaped"]["title"]


def atom_text_escaped(store: Store, db: Path) -> None:
    (row,) = stored(store)
    assert row["summary_html"].startswith("&lt;script&gt;")
    assert "alert(8)" in row["summary_text"]


def sane_dates(store: Store, db: Path) -> None:
    rows = {row["guid"]: row for row in stored(store)}
    assert set(rows) == {"future", "year-one", "garbage", "fine"}
    for guid in ("future", "year-one", "garbage"):
        # Never after the poll, never a year that breaks sorting, never "first" by fiat.
        assert rows[guid]["published"] == "2026-11-25T12:00:00Z", guid
    assert rows["fine"]["published"] == "2026-11-20T08:00:00Z"
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["published"]) for r in rows.values()
    )


def first_of_duplicates(store: Store, db: Path) -> None:
    rows = stored(store)
    assert sorted(row["guid"] for row in rows) == ["dup", "other"]
    assert next(r for r in rows if r["guid"] == "dup")["title"] == "First copy"


DATES = feed(
    item("future", date="Fri, 31 Dec 9999 23:59:59 GMT")
    + item("year-one", date="Mon, 01 Jan 0001 00:00:00 GMT")
    + item("garbage", date="the day after tomorrow, maybe")
    + item("fine", date=rfc822(NOW - timedelta(days=5, hours=4)))
)
CASES: dict[str, Case] = {
    "slow-drip-body": Case(
        lambda: fs.drip_body(rss(market_items(3))), FetchOutcome.TIMEOUT, r"timed out after 2s"
    ),
    "slow-drip-headers": Case(lambda: fs.drip_headers(), FetchOutcome.TIMEOUT, r"timed out"),
    "reset-mid-body": Case(
        lambda: fs.reset_mid_body(rss(market_items(200))),
        FetchOutcome.NETWORK_ERROR,
        r"connection lost while reading|server broke the HTTP protocol",
    ),
    "truncated-content-length": Case(
        lambda: fs.truncated(rss(market_items(5))),
        FetchOutcome.NETWORK_ERROR,
        r"server broke the HTTP protocol: .*incomplete|complete message body",
    ),
    "redirect-loop": Case(
        lambda: fs.redirect("/redirect-loop"), FetchOutcome.REFUSED, r"more than 5 redirects"
    ),
    "redirect-file": Case(
        lambda: fs.redirect("file:///etc/passwd"),
        FetchOutcome.REFUSED,
        r"refused redirect to a non-http\(s\) URL: file:///etc/passwd",
    ),
    "redirect-ftp": Case(
        lambda: fs.redirect("ftp://127.0.0.1/feed.xml", "301 Moved Permanently"),
        FetchOutcome.REFUSED,
        r"refused redirect to a non-http\(s\) URL: ftp://",
    ),
    "redirect-gopher": Case(
        lambda: fs.redirect("gopher://127.0.0.1:70/1"),
        FetchOutcome.REFUSED,
        r"non-http\(s\) URL: gopher://",
    ),
    "redirect-javascript": Case(
        lambda: fs.redirect("javascript:alert(1)", "307 Temporary Redirect"),
        FetchOutcome.REFUSED,
        r"non-http\(s\) URL: javascript:",
    ),
    "gzip-bomb": Case(
        lambda: fs.compressed(gzip_bomb(), "gzip"),
        FetchOutcome.TOO_LARGE,
        r"over the 10000000-byte cap",
    ),
    "brotli-bomb": Case(
        lambda: fs.compressed(brotli_bomb(), "br"),
        FetchOutcome.TOO_LARGE,
        r"over the 10000000-byte cap",
    ),
    "billion-laughs": Case(
        lambda: fs.body(BILLION_LAUGHS), FetchOutcome.OK, r"entity-expansion bomb"
    ),
    "quadratic-entity-blowup": Case(
        lambda: fs.body(QUADRATIC), FetchOutcome.OK, r"entity-expansion bomb"
    ),
    "external-entity": Case(lambda: fs.body(XXE), FetchOutcome.OK, r"external XML entity"),
    "100k-entries": Case(
        lambda: fs.body(huge_feed(100_000)), FetchOutcome.OK, None, one_warned_entry_cap
    ),
    "invalid-utf8": Case(
        lambda: fs.body(feed(item("1", title="Cafe_ stocks")).replace(b"e_", b"\xe9\xff\xfe")),
        FetchOutcome.OK,
        None,
        readable_text("stocks"),
    ),
    "mislabelled-encoding": Case(
        lambda: fs.body(
            feed(item("1", title="Zürich €uro café")).decode().encode("cp1252"),
            content_type="application/rss+xml; charset=utf-16",
        ),
        FetchOutcome.OK,
        None,
        readable_text("rich"),
    ),
    "5mb-title": Case(
        lambda: fs.body(feed(item("1", title="Markets " * 650_000))),
        FetchOutcome.OK,
        None,
        title_capped,
    ),
    "nul-bytes": Case(
        lambda: fs.body(feed(item("n\x00ul", title="Nul\x00title", body="<p>a\x00b</p>"))),
        FetchOutcome.OK,
        None,
        no_nul,
    ),
    "script-iframe-onerror": Case(
        lambda: fs.body(MARKUP), FetchOutcome.OK, None, markup_neutralised
    ),
    "atom-text-markup": Case(
        lambda: fs.body(ATOM_TEXT, "application/atom+xml"), FetchOutcome.OK, None, atom_text_escaped
    ),
    "dates-9999-0001-garbage": Case(lambda: fs.body(DATES), FetchOutcome.OK, None, sane_dates),
    "duplicate-guids": Case(
        lambda: fs.body(
            feed(item("dup", title="First copy") + item("other") + item("dup", title="Second copy"))
        ),
        FetchOutcome.OK,
        None,
        first_of_duplicates,
    ),
    "html-instead-of-feed": Case(
        lambda: fs.body(HTML_PAGE, "text/html; charset=utf-8"), FetchOutcome.OK, r"^not a feed"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_feed(name: str, server: fs.FaultServer, tmp_path: Path) -> None:
    case = CASES[name]
    server.route(f"/{name}", case.handler())
    server.route("/good", fs.body(rss(market_items(3))))
    settings = make_settings(
        tmp_path,
        [
            {"name": "hostile", "publisher": "Hostile", "url": server.url(f"/{name}")},
            # Another host name: the per-host limit must not make it queue behind.
            {"name": "good", "publisher": "Good", "url": server.url("/good", host="localhost")},
        ],
        timeout=f"{TIMEOUT:g}s",
        max_bytes=MAX_BYTES,
    )
    with Store.open(tmp_path / "agg.db") as store:
        started = time.monotonic()
        arrived: dict[str, float] = {}
        reports: dict[str, PollReport] = {}
        for report in poll(store, settings, everything=True, clock=lambda: NOW):
            arrived[report.feed] = time.monotonic() - started
            reports[report.feed] = report
        took = time.monotonic() - started

        assert took < TIMEOUT + MARGIN, f"poll took {took:.1f}s"
        assert reports["good"].ok and reports["good"].items_new == 3
        # The good feed never waits for the hostile one's timeout.
        assert arrived["good"] < 1.0, arrived

        hostile = store.feeds(["hostile"])[0]
        report = reports["hostile"]
        assert report.outcome is case.outcome, (report.outcome, report.error)
        if case.error is None:
            assert hostile.last_error is None, hostile.last_error
            assert hostile.error_count == 0
        else:
            error = hostile.last_error or ""
            assert re.search(case.error, error), error
            assert "\n" not in error and len(error) <= 400
            assert hostile.error_count == 1
            assert stored(store) == []
        if case.check is not None:
            case.check(store, tmp_path / "agg.db")
        assert report.bytes_read <= MAX_BYTES + 65_536
    assert executable_markup(tmp_path / "agg.db") == []


def test_memory_stays_bounded_for_bombs_and_huge_feeds(
    server: fs.FaultServer, tmp_path: Path
) -> None:
    """The whole hostile set polled by the real CLI in one process: peak RSS stays small."""
    heavy = [
        "gzip-bomb",
        "brotli-bomb",
        "billion-laughs",
        "quadratic-entity-blowup",
        "100k-entries",
        "5mb-title",
    ]
    for name in heavy:
        server.route(f"/{name}", CASES[name].handler())
    config = tmp_path / "config.toml"
    lines = ['[storage]\npath = "agg.db"', '[polling]\ntimeout = "5s"\nmax_bytes = 10_000_000']
    lines += [
        f'[[feeds]]\nname = "{n}"\npublisher = "P"\nurl = "{server.url("/" + n)}"' for n in heavy
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    exe = str(Path(sys.executable).parent / "aggregator")
    started = time.monotonic()
    process = subprocess.Popen(
        [exe, "--config", str(config), "poll", "--all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    took = time.monotonic() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, stderr
    assert "Traceback" not in stderr
    # ru_maxrss is in KiB on Linux. The interpreter with its libraries is ~100 MB; six
    # capped bodies (up to 10 MB each, plus their joined copy) can be in flight at once
    # and feedparser holds a 5 MB title several times: ~200 MB alone, ~340 MB on a busy
    # machine. Uncapped, the brotli bomb alone inflates to 1 GiB and 100,000 parsed
    # entries take ~240 MB before a single one is stored.
    peak_mb = usage.ru_maxrss / 1024
    assert peak_mb < 450, f"peak RSS {peak_mb:.0f} MB"
    assert took < 30, took


# Identical (or empty) bodies are all LSH candidates of each other: uncapped, storing
# 1,000 of them cost 500,000 comparisons (20-50 s) on the single writer. The linker
# compares at most MAX_CANDIDATES per item.
def test_many_identical_entries_are_stored_within_the_timeout(
    server: fs.FaultServer, tmp_path: Path
) -> None:
    server.route("/identical", fs.body(huge_feed(MAX_ENTRIES, body="Read more.")))
    settings = make_settings(
        tmp_path,
        [{"name": "hostile", "publisher": "Hostile", "url": server.url("/identical")}],
        timeout=f"{TIMEOUT:g}s",
    )
    with Store.open(tmp_path / "agg.db") as store:
        started = time.monotonic()
        # Capped, the poll takes 2-4 s here; uncapped it took 20-50 s. The bound sits
        # between the two with room for a loaded two-core machine.
        deadline = started + TIMEOUT + UNCAPPED_BELOW
        for report in poll(store, settings, everything=True, clock=lambda: NOW):
            assert report.items_new == MAX_ENTRIES
        assert time.monotonic() < deadline, f"poll took {time.monotonic() - started:.1f}s"
