"""Polling against a real HTTP server on 127.0.0.1: fetch -> parse -> store."""

from __future__ import annotations

import gzip
import math
import socket
import time
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.models import FetchOutcome, PollReport, Settings
from aggregator.pipeline import poll
from aggregator.schedule import JITTER_SHARE, feed_jitter
from aggregator.store import Store
from tests.feeds import NOW, make_settings, market_items, rss

LAST_MODIFIED = "Tue, 24 Nov 2026 08:00:00 GMT"


def one_feed(tmp_path: Path, url: str, **polling: object) -> Settings:
    return make_settings(tmp_path, [{"name": "desk", "publisher": "Desk", "url": url}], **polling)


def poll_once(store: Store, settings: Settings) -> PollReport:
    reports = list(poll(store, settings, everything=True, clock=lambda: NOW))
    assert len(reports) == 1
    return reports[0]


def test_200_stores_items_and_second_poll_of_unchanged_feed_adds_nothing(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        rss(market_items(3)), content_type="application/rss+xml"
    )
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))

    first = poll_once(store, settings)
    assert (first.outcome, first.status, first.items_new, first.error) == (
        FetchOutcome.OK,
        200,
        3,
        None,
    )
    second = poll_once(store, settings)
    assert (second.items_new, second.items_updated) == (0, 0)
    assert store.count("items") == 3
    assert store.count("fetches") == 2
    stored = store.items(limit=None)
    assert {item.url for item in stored} == {
        f"https://news.example/markets/copper-{n}?utm_source=rss" for n in range(3)
    }
    feed = store.feeds()[0]
    # The interval, stretched by the feed's fixed jitter (at most 10%).
    expected = 15 * 60 * (1 + JITTER_SHARE * feed_jitter("desk"))
    assert feed.next_check_at == NOW + timedelta(seconds=math.ceil(expected))
    assert feed.error_count == 0


def test_changed_entry_is_updated_in_place_and_counted_as_revision(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    items = market_items(2)
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(items))
    revised = [dict(items[0], body="<p>Copper rose 2.5 per cent after a correction.</p>"), items[1]]
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(revised))
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))

    poll_once(store, settings)
    report = poll_once(store, settings)
    assert (report.items_new, report.items_updated) == (0, 1)
    by_key = {item.entry_key: item for item in store.items(limit=None)}
    assert len(by_key) == 2
    assert by_key["story-0"].revisions == 1
    assert "2.5 per cent" in by_key["story-0"].summary_text
    assert by_key["story-1"].revisions == 0


def _conditional(etag: str | None, last_modified: str | None, body: bytes):
    seen: list[dict[str, str | None]] = []

    def handler(request: Request) -> Response:
        seen.append(
            {
                "if-none-match": request.headers.get("If-None-Match"),
                "if-modified-since": request.headers.get("If-Modified-Since"),
            }
        )
        if etag and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        if last_modified and request.headers.get("If-Modified-Since") == last_modified:
            return Response(status=304)
        headers = {"Content-Type": "application/rss+xml"}
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        return Response(body, headers=headers)

    return handler, seen


@pytest.mark.parametrize(
    ("etag", "last_modified", "header"),
    [('"v1-abc"', None, "if-none-match"), (None, LAST_MODIFIED, "if-modified-since")],
    ids=["etag", "last-modified"],
)
def test_304_after_validator_means_nothing_to_parse(
    httpserver: HTTPServer,
    tmp_path: Path,
    store: Store,
    etag: str | None,
    last_modified: str | None,
    header: str,
) -> None:
    handler, seen = _conditional(etag, last_modified, rss(market_items(2)))
    httpserver.expect_request("/feed").respond_with_handler(handler)
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))

    first = poll_once(store, settings)
    second = poll_once(store, settings)
    assert first.outcome is FetchOutcome.OK
    assert second.outcome is FetchOutcome.NOT_MODIFIED
    assert (second.status, second.items_seen, second.items_new, second.error) == (304, 0, 0, None)
    assert seen[0][header] is None
    assert seen[1][header] == (etag or last_modified)
    feed = store.feeds()[0]
    assert (feed.etag, feed.last_modified) == (etag, last_modified)
    assert store.count("items") == 2


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_compressed_bodies_are_decoded(
    httpserver: HTTPServer, tmp_path: Path, store: Store, encoding: str
) -> None:
    body = rss(market_items(4))
    compressed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": pytest.importorskip("brotli").compress,
    }[encoding](body)
    accepted: list[str] = []

    def handler(request: Request) -> Response:
        accepted.append(request.headers.get("Accept-Encoding", ""))
        return Response(
            compressed,
            headers={"Content-Encoding": encoding, "Content-Type": "application/rss+xml"},
        )

    httpserver.expect_request("/feed").respond_with_handler(handler)
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    assert (report.outcome, report.items_new) == (FetchOutcome.OK, 4)
    assert report.bytes_read == len(body)
    assert encoding in accepted[0]


def test_permanent_redirect_updates_stored_url(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(rss(market_items(1)))
    settings = one_feed(tmp_path, httpserver.url_for("/old"))

    report = poll_once(store, settings)
    assert (report.outcome, report.items_new) == (FetchOutcome.OK, 1)
    assert store.feeds()[0].url == httpserver.url_for("/new")

    poll_once(store, settings)
    paths = [request.path for request, _ in httpserver.log]
    assert paths == ["/old", "/new", "/new"]


def test_temporary_redirect_keeps_stored_url(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": "/today"}
    )
    httpserver.expect_request("/today").respond_with_data(rss(market_items(1)))
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))
    assert poll_once(store, settings).items_new == 1
    assert store.feeds()[0].url == httpserver.url_for("/feed")


def test_redirect_loop_and_non_http_redirect_are_refused(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/loop")))
    assert report.outcome is FetchOutcome.REFUSED
    assert "redirects" in (report.error or "")
    assert len(httpserver.log) == 6

    httpserver.clear()
    httpserver.expect_request("/file").respond_with_data(
        "", status=301, headers={"Location": "file:///etc/passwd"}
    )
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/file")))
    assert report.outcome is FetchOutcome.REFUSED
    assert "non-http" in (report.error or "")
    assert store.feeds()[0].url == httpserver.url_for("/file")


@pytest.mark.parametrize(
    ("status", "outcome", "active"),
    [
        (404, FetchOutcome.HTTP_ERROR, True),
        (500, FetchOutcome.HTTP_ERROR, True),
        (410, FetchOutcome.GONE, False),
    ],
)
def test_http_errors_are_recorded_on_the_feed(
    httpserver: HTTPServer,
    tmp_path: Path,
    store: Store,
    status: int,
    outcome: FetchOutcome,
    active: bool,
) -> None:
    httpserver.expect_request("/feed").respond_with_data("nope", status=status)
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))

    report = poll_once(store, settings)
    assert (report.outcome, report.status) == (outcome, status)
    assert str(status) in (report.error or "")
    feed = store.feeds()[0]
    assert feed.error_count == 1
    assert feed.last_error == report.error
    assert feed.active is active
    assert store.count("items") == 0
    if active:
        # Backoff: the second consecutive failure waits twice the interval.
        poll_once(store, settings)
        feed = store.feeds()[0]
        assert feed.error_count == 2
        expected = 2 * 15 * 60 * (1 + JITTER_SHARE * feed_jitter("desk"))
        assert feed.next_check_at == NOW + timedelta(seconds=math.ceil(expected))
    else:
        assert store.due_feeds(NOW + timedelta(days=30)) == []


def test_error_then_success_resets_error_count(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_ordered_request("/feed").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(market_items(2)))
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))
    poll_once(store, settings)
    report = poll_once(store, settings)
    assert (report.error, report.items_new) == (None, 2)
    feed = store.feeds()[0]
    assert (feed.error_count, feed.last_error) == (0, None)


def test_retry_after_is_kept_for_the_scheduler(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"}
    )
    poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    feed = store.feeds()[0]
    assert feed.retry_after_until == NOW + timedelta(hours=1)
    assert feed.next_check_at is not None
    assert feed.next_check_at >= NOW + timedelta(hours=1)
    assert store.due_feeds(NOW + timedelta(minutes=59)) == []


def test_timeout_is_recorded_and_poll_returns_promptly(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(3)
        return Response(rss(market_items(1)))

    httpserver.expect_request("/feed").respond_with_handler(slow)
    settings = one_feed(tmp_path, httpserver.url_for("/feed"), timeout="0.5s")
    started = time.monotonic()
    report = poll_once(store, settings)
    assert time.monotonic() - started < 2.5
    assert report.outcome is FetchOutcome.TIMEOUT
    assert "timed out" in (report.error or "")
    assert store.feeds()[0].error_count == 1


def test_body_over_the_cap_is_refused(httpserver: HTTPServer, tmp_path: Path, store: Store) -> None:
    body = rss(market_items(40))
    httpserver.expect_request("/feed").respond_with_data(body)
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed"), max_bytes=1000))
    assert report.outcome is FetchOutcome.TOO_LARGE
    assert "cap" in (report.error or "")
    assert store.count("items") == 0


def test_cap_applies_to_decompressed_bytes(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # 2 MB of padding compresses to a few KB: only the inflated size may count.
    padding = "<!--" + " " * 2_000_000 + "-->"
    body = rss(market_items(1), extra=padding)
    compressed = gzip.compress(body)
    assert len(compressed) < 50_000
    httpserver.expect_request("/feed").respond_with_data(
        compressed, headers={"Content-Encoding": "gzip"}
    )
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed"), max_bytes=1_000_000))
    assert report.outcome is FetchOutcome.TOO_LARGE
    assert report.bytes_read <= 1_000_000 + 1_100_000


def test_malformed_xml_without_entries_is_an_error(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        "<html><body><h1>Welcome</h1><p>Subscribe to our newsletter", content_type="text/html"
    )
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    assert report.outcome is FetchOutcome.OK
    assert (report.error or "").startswith("not a feed")
    feed = store.feeds()[0]
    assert feed.error_count == 1
    assert feed.etag is None
    assert store.count("items") == 0


def test_bozo_feed_with_entries_is_used_and_warning_recorded(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # An unescaped ampersand and a missing closing tag: not well-formed XML.
    body = rss(market_items(2)).replace(b"<title>Test Desk</title>", b"<title>S&P Desk</title>")
    body = body.replace(b"</channel></rss>", b"")
    httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed")))
    assert (report.outcome, report.items_new, report.error) == (FetchOutcome.OK, 2, None)
    assert report.warning
    feed = store.feeds()[0]
    assert feed.bozo_warning == report.warning
    assert feed.error_count == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_host_is_recorded_not_raised(tmp_path: Path, store: Store) -> None:
    settings = one_feed(tmp_path, f"http://127.0.0.1:{_closed_port()}/feed")
    report = poll_once(store, settings)
    assert report.outcome is FetchOutcome.NETWORK_ERROR
    assert "connection failed" in (report.error or "")
    assert store.feeds()[0].error_count == 1


def test_dns_failure_is_recorded(tmp_path: Path, store: Store) -> None:
    # .invalid is reserved (RFC 2606) and never resolves, so no query leaves the machine.
    report = poll_once(store, one_feed(tmp_path, "http://feeds.nonexistent.invalid/rss"))
    assert report.outcome is FetchOutcome.NETWORK_ERROR
    assert store.feeds()[0].last_error


def test_only_due_feeds_are_polled_by_default(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/a").respond_with_data(rss(market_items(1)))
    httpserver.expect_request("/b").respond_with_data(rss(market_items(1, start=5)))
    settings = make_settings(
        tmp_path,
        [
            {"name": "a", "url": httpserver.url_for("/a"), "interval": "1h"},
            {"name": "b", "url": httpserver.url_for("/b"), "interval": "5m"},
        ],
    )
    assert {r.feed for r in poll(store, settings, clock=lambda: NOW)} == {"a", "b"}
    later = NOW + timedelta(minutes=10)
    assert [r.feed for r in poll(store, settings, clock=lambda: later)] == ["b"]
    named = list(poll(store, settings, names=["a"], clock=lambda: later))
    assert [r.feed for r in named] == ["a"]


def test_one_failing_feed_does_not_stop_the_others(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    httpserver.expect_request("/good").respond_with_data(rss(market_items(2)))
    httpserver.expect_request("/bad").respond_with_data("oops", status=503)
    settings = make_settings(
        tmp_path,
        [
            {"name": "good", "url": httpserver.url_for("/good")},
            {"name": "bad", "url": httpserver.url_for("/bad")},
            {"name": "gone", "url": f"http://127.0.0.1:{_closed_port()}/x"},
        ],
    )
    reports = {r.feed: r for r in poll(store, settings, clock=lambda: NOW)}
    assert reports["good"].items_new == 2
    assert (reports["bad"].error or "").startswith("HTTP 503")
    assert reports["gone"].outcome is FetchOutcome.NETWORK_ERROR


def test_an_unchanged_body_without_validators_is_not_parsed_again(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    items = market_items(3)
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(items))
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(items))
    httpserver.expect_ordered_request("/feed").respond_with_data(rss(market_items(4)))
    settings = one_feed(tmp_path, httpserver.url_for("/feed"))
    assert poll_once(store, settings).items_seen == 3
    same = poll_once(store, settings)
    assert (same.outcome, same.items_seen, same.items_new, same.error) == (
        FetchOutcome.OK,
        0,
        0,
        None,
    )
    changed = poll_once(store, settings)
    assert (changed.items_seen, changed.items_new) == (4, 1)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_compression_bomb_stops_at_the_cap(
    httpserver: HTTPServer, tmp_path: Path, store: Store, encoding: str
) -> None:
    # 100-300 MB of zeros after a valid feed start: a few hundred KB on the wire.
    head = rss(market_items(1)).replace(b"</channel></rss>", b"<!--")
    if encoding == "br":
        bomb = pytest.importorskip("brotli").compress(head + b"\0" * 100_000_000, quality=1)
    else:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
        parts = [packer.compress(head)]
        block = b"\0" * 1_000_000
        parts += [packer.compress(block) for _ in range(300)]
        bomb = b"".join([*parts, packer.flush()])
    assert len(bomb) < 2_000_000
    httpserver.expect_request("/feed").respond_with_data(
        bomb, headers={"Content-Encoding": encoding, "Content-Type": "application/rss+xml"}
    )
    started = time.monotonic()
    report = poll_once(store, one_feed(tmp_path, httpserver.url_for("/feed"), max_bytes=2_000_000))
    assert report.outcome is FetchOutcome.TOO_LARGE
    # Stopped within one decompressed piece of the cap, not after inflating everything.
    assert 2_000_000 < report.bytes_read <= 2_000_000 + 65_536
    assert time.monotonic() - started < 10
