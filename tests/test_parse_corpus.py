"""Every feed of the shared corpus goes through parse_feed.

One test loops over all ~2,200 files (parametrising each would make collection slow) and
reports every failure at once. The corpus lives outside the repository, so the module is
skipped when it is absent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.errors import ParseError
from aggregator.models import ParsedFeed
from aggregator.parse import FUTURE_TOLERANCE, parse_feed

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

if not CORPUS.is_dir():
    pytest.skip(f"feed corpus not found at {CORPUS}", allow_module_level=True)


def _corpus_files() -> list[Path]:
    return sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file() and not path.name.upper().startswith(("LICENSE", "README"))
    )


def _feedparser_entry_count(body: bytes, url: str) -> int:
    """Entries feedparser itself finds, with and without the headers parse_feed sends."""
    counts = [len(feedparser.parse(body).get("entries") or [])]
    for content_type in ("application/xml", "application/rss+xml", "text/xml"):
        headers = {"content-location": url, "content-type": content_type}
        counts.append(len(feedparser.parse(body, response_headers=headers).get("entries") or []))
    return max(counts)


def _entry_problems(name: str, feed: ParsedFeed) -> list[str]:
    problems = []
    entries = feed.entries
    keys = [entry.key for entry in entries]
    if len(keys) != len(set(keys)):
        problems.append(f"{name}: duplicate entry keys")
    for entry in entries:
        if not entry.key:
            problems.append(f"{name}: empty entry key")
        for label, moment in (("published", entry.published), ("updated", entry.updated)):
            if moment is None:
                continue
            if moment.utcoffset() != timedelta(0):
                problems.append(f"{name}: {label} {moment!r} is not UTC")
            if moment > NOW + FUTURE_TOLERANCE:
                problems.append(f"{name}: {label} {moment.isoformat()} is in the future")
        if "\x00" in entry.title + entry.summary_text + entry.content_text:
            problems.append(f"{name}: NUL character in text")
        # feedparser's sanitizer may leave "<script>" inside an HTML comment (its "crazy"
        # tests do); outside a comment it would be a live element reaching storage.
        if "<script" in _without_comments(entry.summary_html + entry.content_html).lower():
            problems.append(f"{name}: <script> element in stored HTML")
    return problems


def _without_comments(html: str) -> str:
    out, pos = [], 0
    while True:
        start = html.find("<!--", pos)
        if start < 0:
            out.append(html[pos:])
            return "".join(out)
        out.append(html[pos:start])
        end = html.find("-->", start + 4)
        if end < 0:
            return "".join(out)
        pos = end + 3


def test_without_comments() -> None:
    assert _without_comments("a<!-- <script> -->b<!-- x") == "ab"
    assert _without_comments("<script>x</script>") == "<script>x</script>"


def test_every_corpus_feed_parses_or_is_rejected_only_without_entries() -> None:
    files = _corpus_files()
    failures: list[str] = []
    parsed_files = rejected_files = warned_files = entries_total = 0

    for path in files:
        name = str(path.relative_to(CORPUS))
        body = path.read_bytes()
        url = f"https://corpus.example/{name}"
        try:
            feed = parse_feed(body, url=url, now=NOW)
        except ParseError as e:
            rejected_files += 1
            found = _feedparser_entry_count(body, url)
            if found:
                failures.append(f"{name}: rejected although feedparser finds {found} entries: {e}")
            continue
        except Exception as e:
            failures.append(f"{name}: raised {type(e).__name__}: {e}")
            continue
        parsed_files += 1
        entries_total += len(feed.entries)
        warned_files += feed.warning is not None
        failures.extend(_entry_problems(name, feed))

    summary = (
        f"{len(files)} files: {parsed_files} parsed ({warned_files} with a warning), "
        f"{rejected_files} rejected, {entries_total} entries"
    )
    print(summary)
    assert not failures, f"{len(failures)} problems ({summary}):\n" + "\n".join(failures[:200])
    assert len(files) >= 2000, summary
    assert parsed_files >= 2000, summary
    assert entries_total >= 1500, summary
    # The corpus holds a few CDF and empty documents; a jump here means feeds are being lost.
    assert rejected_files <= 0.02 * len(files), summary


def test_remembered_base_uris_parse_the_corpus_as_feedparser_alone_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aggregator.parse caches feedparser's base-URI function: with and without the
    # cache, every corpus file (xml:base cases included) must parse the same.
    import feedparser.mixin

    files = [
        path for path in _corpus_files() if "xml" in path.read_bytes()[:4096].decode("latin-1")
    ]

    def parse_all() -> list[dict[str, object]]:
        # Exceptions compare by identity: compare what they say.
        parsed = (feedparser.parse(path.read_bytes(), sanitize_html=True) for path in files)
        return [
            {**result, "bozo_exception": repr(result.get("bozo_exception"))} for result in parsed
        ]

    cached = feedparser.mixin.make_safe_absolute_uri
    with_cache = parse_all()
    monkeypatch.setattr(feedparser.mixin, "make_safe_absolute_uri", cached.__wrapped__)
    without = parse_all()
    assert len(files) > 1000
    differ = [str(path) for path, a, b in zip(files, with_cache, without, strict=True) if a != b]
    assert differ == []
