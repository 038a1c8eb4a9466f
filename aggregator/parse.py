"""Feed bytes -> ParsedFeed. The only module that imports feedparser.

feedparser's dictionaries never leave this module: every entry becomes a
frozen ParsedEntry with UTC datetimes, clean text and a stable key.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import html
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import feedparser.mixin

from aggregator.errors import ParseError
from aggregator.models import ParsedEntry, ParsedFeed
from aggregator.text import canonical_url, html_to_text, plain_text, single_line

# A date this far ahead of our clock is a publisher's clock or time-zone bug;
# keeping it would pin the item to the top and make it look published first.
FUTURE_TOLERANCE = timedelta(minutes=10)
# An earlier date is a placeholder (.NET's DateTime.MinValue is 0001-01-01): it would
# make the item the first publication of any story, and the store's ISO text form,
# which must sort as text, needs four-digit years.
EARLIEST_DATE = datetime(1000, 1, 1, tzinfo=UTC)
# Entities a document may declare for itself, in total characters of replacement text.
# Real feeds declare none or a few short ones; expansion bombs need long or nested ones.
MAX_ENTITY_TEXT = 4096
# Entries read from one document. A feed carries its latest few dozen; thousands are
# an archive dump or an attack, and each entry costs parsing, storing and linking.
MAX_ENTRIES = 1000
# What one entry may store, field by field. The body cap bounds only the sum of an
# entry's fields, and each is stored more than once (a link as url and canonical_url and
# in an index, text in the search index and the dedup signatures): one 10 MB guid made a
# 42 MB database for two items. Each cap is far above what real feeds carry; a value
# over it is cut (a link is dropped instead) and the feed's warning names the field.
# A title or author this long is not one; it would bloat every listing and index.
MAX_TITLE_LENGTH = 1000
MAX_AUTHOR_LENGTH = 300
# Real guids are URLs or tag: URIs of a few dozen characters. The stored guid is only
# shown: the entry key is made from the whole guid first (hashed past MAX_KEY_LENGTH),
# so two guids that differ only after the cut stay two entries.
MAX_GUID_LENGTH = 2048
# Longer than the request line common servers accept (Apache 8190 bytes, nginx 8 KB by
# default), so such a link could not be opened anyway. It is dropped, not cut: a cut
# URL names another page, and the linker takes items sharing a canonical URL for one story.
MAX_URL_LENGTH = 8192
# Feeds tag an entry with a handful of short terms; thousands are a dump or an attack.
MAX_CATEGORIES = 100
MAX_CATEGORY_LENGTH = 200
# Each summary and content field, HTML and text alike: ~80,000 words, longer than any
# article; the dedup signatures and the search index read all of it.
MAX_CONTENT_LENGTH = 500_000
# Longer guids are hashed so the key column stays small and indexable.
MAX_KEY_LENGTH = 512
MAX_WARNING_LENGTH = 300

_SURROGATE_REFS = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}"
    rb"|0*(?:552(?:9[6-9])|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}|573[0-3][0-9]|5734[0-3]));"
)
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
# NUL and other C0 controls, and lone surrogates, which SQLite cannot store as UTF-8.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*\[", re.IGNORECASE)
_ENTRY_START = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")
_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")
_ENTITY = re.compile(rb"<!ENTITY\s+(?:%\s+)?[^\s\"']+\s+(?:([\"'])(.*?)\1|(\w+))", re.S)
_TAG = re.compile(
    rb"<(/?)([\w.:-]+)[^>]*?(/?)>|<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>|<![^>]*>", re.S
)


def parse_feed(
    body: bytes,
    *,
    url: str,
    now: datetime,
    content_type: str | None = None,
    max_entries: int = MAX_ENTRIES,
) -> ParsedFeed:
    """Parse one feed document fetched from `url` at `now`.

    A feed that is not well-formed but still yields entries is used, with the
    problem kept in `warning`; so is a feed cut to its first `max_entries`
    entries. Raises ParseError when nothing usable is there, and for a document
    whose own entity declarations could expand to far more than its size.
    """
    _refuse_entity_declarations(body)
    body, cut = _first_entries(body, max_entries)
    body = _bounded_people(body)
    # content-location lets feedparser resolve relative links against the feed's
    # URL. Without a Content-Type it flags every document as bozo, so a missing
    # one is taken as generic XML, whose charset rules follow the XML declaration.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    try:
        parsed = _feedparser(body, headers)
    except Exception:
        # feedparser's loose parser crashes on character references to surrogates
        # (&#xD800;); those can never be text, so replace them and try once more.
        try:
            parsed = _feedparser(_SURROGATE_REFS.sub(b"&#xFFFD;", body), headers)
        except Exception as e:  # a crash is still a bad feed, not a bad poll
            raise ParseError(f"feed could not be parsed: {_one_line(repr(e))}") from e

    raw_entries = parsed.get("entries") or []
    version = parsed.get("version") or None
    problem = _bozo_message(parsed) if parsed.get("bozo") else None
    if not raw_entries and not version:
        # Nothing recognisable as RSS or Atom: an HTML page, an error page, garbage.
        if problem:
            raise ParseError(f"not a feed: {problem}")
        raise ParseError("not a feed: no RSS or Atom document found")

    entries: list[ParsedEntry] = []
    seen_keys: set[str] = set()
    skipped = 0
    # Entries with a field over its cap, and the fields that were.
    overlong = 0
    overlong_fields: dict[str, None] = {}
    if len(raw_entries) > max_entries:
        cut = True
        raw_entries = raw_entries[:max_entries]
    for raw in raw_entries:
        try:
            entry, entry_cuts = _entry(raw, now)
        except Exception:  # one odd entry must not cost the rest of the feed
            skipped += 1
            continue
        if entry.key in seen_keys:
            continue
        seen_keys.add(entry.key)
        entries.append(entry)
        if entry_cuts:
            overlong += 1
            overlong_fields.update(dict.fromkeys(entry_cuts))

    notes = []
    if cut:
        notes.append(f"feed has more than {max_entries} entries; only the first were read")
    if skipped:
        notes.append(f"{skipped} unreadable entr{'y' if skipped == 1 else 'ies'} skipped")
    if overlong:
        notes.append(
            f"{overlong} entr{'y' if overlong == 1 else 'ies'} with over-long fields "
            f"cut to their caps ({', '.join(overlong_fields)})"
        )
    if notes:
        problem = "; ".join([*([problem] if problem else []), *notes])

    feed_info: Mapping[str, Any] = parsed.get("feed") or {}
    site = feed_info.get("link") or None
    return ParsedFeed(
        title=_capped(single_line(feed_info.get("title")), MAX_TITLE_LENGTH) or None,
        # Stored as the feed's site_url: the same cap as an entry's link.
        link=site if site is None or len(site) <= MAX_URL_LENGTH else None,
        version=version,
        entries=tuple(entries),
        warning=problem,
        ttl=_ttl_seconds(feed_info.get("ttl")),
    )


def _refuse_entity_declarations(body: bytes) -> None:
    """Refuse entity-expansion bombs ("billion laughs", quadratic blow-up) and XXE.

    The XML parser has its own amplification limit; this does not depend on the
    libexpat version Python was built with. Entities can only be declared in
    the DOCTYPE's internal subset, before the root element.
    """
    doctype = _DOCTYPE.search(body, 0, 65_536)
    if doctype is None:
        return
    end = body.find(b"]>", doctype.end())
    subset = body[doctype.end() : end if end >= 0 else len(body)]
    total = 0
    for declaration in _ENTITY.finditer(subset):
        value, keyword = declaration.group(2), declaration.group(3)
        if keyword is not None:
            raise ParseError("refused: the document declares an external XML entity")
        if re.search(rb"&[^#]|%", value):
            raise ParseError(
                "refused: the document declares XML entities built from other entities "
                "(an entity-expansion bomb)"
            )
        total += len(value)
    if total > MAX_ENTITY_TEXT:
        raise ParseError(
            f"refused: the document declares {total} characters of XML entities "
            f"(over {MAX_ENTITY_TEXT}; an entity-expansion bomb)"
        )


def _first_entries(body: bytes, limit: int) -> tuple[bytes, bool]:
    """The document cut after its `limit`-th entry and closed again, and whether it was cut.

    feedparser builds every entry of a document in memory before we see one, so a
    feed of 100,000 entries is shortened here first. The elements open at the first
    entry (rss/channel, feed, rdf:RDF) are closed again after the cut. A document
    this does not understand is left whole; the entry cap after parsing still holds.
    """
    ends = _ENTRY_END.finditer(body)
    last = None
    for count, match in enumerate(ends, start=1):
        if count > limit:
            break
        last = match
    else:
        return body, False
    first = _ENTRY_START.search(body)
    if last is None or first is None or first.start() > last.start():
        return body, False
    open_tags: list[bytes] = []
    for tag in _TAG.finditer(body, 0, first.start()):
        closing, name, empty = tag.group(1), tag.group(2), tag.group(3)
        if name is None or empty:
            continue
        if not closing:
            open_tags.append(name)
        elif open_tags and open_tags[-1] == name:
            open_tags.pop()
    closers = b"".join(b"</" + name + b">" for name in reversed(open_tags))
    return body[: last.end()] + closers, True


# feedparser looks for an e-mail address in every author, publisher and contributor with
# a pattern that backtracks on a long run of word characters: its time grows with the
# square of the text (30,000 characters: ~5 s; 100,000: ~60 s), so a feed of such names
# would hold a poll for hours. No person's name is this long; what is stored is cut to
# MAX_AUTHOR_LENGTH anyway. The text is cut before feedparser sees it, in plain text or
# a CDATA section; the element stays, so the entry still parses.
MAX_PERSON_TEXT = 1000
_PERSON_TEXT = re.compile(
    rb"(<(?:[\w.-]+:)?(?:author|creator|contributor|publisher|name|email|managingEditor"
    rb"|webMaster)\b[^>]*>\s*(?:<!\[CDATA\[)?)([^<\]]{%d})[^<\]]*" % MAX_PERSON_TEXT,
    re.IGNORECASE,
)


def _bounded_people(body: bytes) -> bytes:
    return _PERSON_TEXT.sub(rb"\1\2", body)


# feedparser works out the base URI again at every start tag, even where no xml:base
# changes it: 15% of its time on a feed of plain items. The function is pure (base and
# relative URI in, safe absolute URI out), so its answers are remembered.
feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=256)(
    feedparser.mixin.make_safe_absolute_uri
)


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # Relative links are resolved afterwards, and only in markup that has one
    # (_resolved): feedparser's resolver re-parses every HTML field, a sixth of
    # its time, and the links in most items are absolute already.
    return feedparser.parse(
        body, response_headers=headers, sanitize_html=True, resolve_relative_uris=False
    )


# Attributes feedparser's resolver rewrites. One with a value that is not plainly an
# absolute http(s) URL (a relative link, or a scheme it drops, javascript:) sends the
# markup through the resolver.
_URI_ATTRIBUTES = (
    "href", "src", "cite", "codebase", "background", "longdesc", "usemap", "action",
    "profile", "classid", "data", "poster",
)  # fmt: skip
# Plainly absolute, or empty (the sanitiser empties javascript: links).
_SETTLED = (*(q + scheme for q in ("", '"', "'") for scheme in ("http://", "https://")), '""', "''")
_ASSIGNMENT = re.compile(r"=\s*")


def _has_unresolved_uri(value: str) -> bool:
    # A loop over the "=" signs: a regex trying every attribute name at every
    # position cost as much as the resolver it spares.
    for assignment in _ASSIGNMENT.finditer(value):
        if value.startswith(_SETTLED, assignment.end()):
            continue
        before = value[max(0, assignment.start() - 12) : assignment.start()].rstrip().lower()
        name = next((n for n in _URI_ATTRIBUTES if before.endswith(n)), None)
        # A whole attribute name: "baseProfile" on SVG is not "profile".
        if name is not None and not before[: -len(name)][-1:].isalnum():
            return True
    return False


def _resolved(value: str, detail: Mapping[str, Any] | None, kind: str) -> str:
    """Sanitised HTML with its links made absolute against the element's base."""
    if not _has_unresolved_uri(value):
        return value
    resolver = _LinkResolver(str((detail or {}).get("base") or ""), "utf-8", kind)
    resolver.feed(value)
    resolved = resolver.output()
    return resolved.decode("utf-8", "ignore") if isinstance(resolved, bytes) else str(resolved)


class _LinkResolver(feedparser.urls.RelativeURIResolver):  # type: ignore[misc]
    """feedparser's resolver, run after its sanitiser: an empty link stays empty.

    The sanitiser empties javascript: links; resolved as feedparser would, they
    would point at the page the feed lives on.
    """

    def resolve_uri(self, uri: str) -> str:
        return str(super().resolve_uri(uri)) if uri.strip() else uri


def _bozo_message(parsed: Mapping[str, Any]) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "feed is not well-formed"
    text = str(exc) or type(exc).__name__
    return _one_line(f"{type(exc).__name__}: {text}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > MAX_WARNING_LENGTH:
        line = line[: MAX_WARNING_LENGTH - 1] + "…"
    return line


def _ttl_seconds(value: object) -> float | None:
    try:
        minutes = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes * 60.0 if math.isfinite(minutes) and minutes > 0 else None


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment if moment >= EARLIEST_DATE else None


def _detail(value: str, detail: Mapping[str, Any] | None) -> tuple[str, str, bool]:
    """A text construct as (html, text, cut) to store; `cut`: it was over MAX_CONTENT_LENGTH.

    feedparser sanitises HTML constructs (no script, iframe, event handlers or
    javascript: links) but hands plain-text ones over verbatim, where `<script>`
    is text: their stored HTML is that text escaped.
    """
    value = _UNSTORABLE.sub("", value)
    # Cut before the work as well as after it: resolving links and escaping can lengthen.
    shortened = _capped_html(value, MAX_CONTENT_LENGTH)
    cut = shortened != value
    kind = (detail or {}).get("type") or "text/html"
    if kind in _HTML_TYPES or "html" in kind:
        markup = _resolved(shortened, detail, kind)
        text = html_to_text(markup)
    else:
        markup, text = html.escape(shortened, quote=False), plain_text(shortened)
    cut = cut or len(markup) > MAX_CONTENT_LENGTH or len(text) > MAX_CONTENT_LENGTH
    return (
        _capped_html(markup, MAX_CONTENT_LENGTH),
        _capped_text(text, MAX_CONTENT_LENGTH),
        cut,
    )


def _content(raw: Mapping[str, Any]) -> tuple[str, str, bool]:
    """The richest content block as _detail() gives it; feeds may offer plain and HTML variants."""
    blocks = [b for b in raw.get("content") or [] if isinstance(b, Mapping) and b.get("value")]
    if not blocks:
        return "", "", False
    html_blocks = [b for b in blocks if "html" in str(b.get("type", ""))]
    best = max(html_blocks or blocks, key=lambda b: len(str(b["value"])))
    return _detail(str(best["value"]), best)


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _capped_text(text: str, limit: int) -> str:
    # Cleaned again: a cut can leave the start of a character reference at the end.
    return text if len(text) <= limit else plain_text(_capped(text, limit))


def _capped_html(markup: str, limit: int) -> str:
    """Markup cut to `limit` characters, never inside a tag or a character reference."""
    if len(markup) <= limit:
        return markup
    cut = markup[: limit - 1]
    tag = cut.rfind("<")
    if tag > cut.rfind(">"):
        cut = cut[:tag]
    reference = cut.rfind("&")
    if reference > cut.rfind(";"):
        cut = cut[:reference]
    return cut + "…"


def _entry(raw: dict[str, Any], now: datetime) -> tuple[ParsedEntry, list[str]]:
    """One feedparser entry as a record, and the fields of it that were over their caps."""
    cuts: list[str] = []
    link = _web_link(raw)
    canonical = canonical_url(link)
    full_title = single_line(raw.get("title"))
    title = _capped(full_title, MAX_TITLE_LENGTH)
    if title != full_title:
        cuts.append("title")

    # dict.get: feedparser's own get() silently answers `published` for a missing `updated`.
    updated = _datetime(dict.get(raw, "updated_parsed"))
    published = (
        _datetime(raw.get("published_parsed")) or _datetime(raw.get("created_parsed")) or updated
    )
    published_from_feed = published is not None
    if published is None or published > now + FUTURE_TOLERANCE:
        published = now
    if updated is not None and updated > now + FUTURE_TOLERANCE:
        updated = now

    summary_html, summary_text, summary_cut = _detail(
        str(raw.get("summary") or ""), raw.get("summary_detail")
    )
    content_html, content_text, content_cut = _content(raw)
    if content_text == summary_text:
        # feedparser copies a lone <content> into summary; keep one of them.
        summary_html, summary_text, summary_cut = "", "", False
    cuts += [
        name for name, was_cut in (("summary", summary_cut), ("content", content_cut)) if was_cut
    ]

    full_author = single_line(raw.get("author"))
    author = _capped(full_author, MAX_AUTHOR_LENGTH) or None
    if len(full_author) > MAX_AUTHOR_LENGTH:
        cuts.append("author")
    terms = dict.fromkeys(
        term
        for tag in raw.get("tags") or []
        if isinstance(tag, Mapping)
        for term in [single_line(tag.get("term") or tag.get("label"))]
        if term
    )
    categories = tuple(dict.fromkeys(_capped(term, MAX_CATEGORY_LENGTH) for term in terms))[
        :MAX_CATEGORIES
    ]
    if len(terms) > MAX_CATEGORIES or any(len(term) > MAX_CATEGORY_LENGTH for term in terms):
        cuts.append("categories")

    guid = _UNSTORABLE.sub("", str(raw.get("id") or "")).strip() or None
    # The key comes from the whole guid and link; only what is stored is cut below.
    key = entry_key(guid, canonical, title, raw.get("published") or dict.get(raw, "updated"))
    if guid is not None and len(guid) > MAX_GUID_LENGTH:
        guid = _capped(guid, MAX_GUID_LENGTH)
        cuts.append("guid")
    if link is not None and len(link) > MAX_URL_LENGTH:
        link = None
        cuts.append("link")
    if canonical is not None and len(canonical) > MAX_URL_LENGTH:
        canonical = None
        if "link" not in cuts:
            cuts.append("link")
    digest = content_hash(title, canonical, author, summary_text, content_text, categories)

    return ParsedEntry(
        key=key,
        guid=guid,
        url=link,
        canonical_url=canonical,
        title=title,
        author=author,
        published=published,
        published_from_feed=published_from_feed,
        updated=updated,
        summary_html=summary_html,
        summary_text=summary_text,
        content_html=content_html,
        content_text=content_text,
        categories=categories,
        content_hash=digest,
    ), cuts


def _web_link(raw: dict[str, Any]) -> str | None:
    """The entry's http(s) link; feedparser falls back to the id (often a tag: URI)."""
    candidates = [raw.get("link")]
    candidates += [
        link.get("href")
        for link in raw.get("links") or []
        if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate"
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip().lower().startswith(
            ("http://", "https://")
        ):
            return _UNSTORABLE.sub("", candidate).strip()
    return None


def content_hash(
    title: str,
    canonical: str | None,
    author: str | None,
    summary_text: str,
    content_text: str,
    categories: tuple[str, ...] = (),
) -> str:
    """Digest of what a reader sees; a change means a new revision of the item."""
    return hashlib.sha256(
        "\x1f".join(
            [title, canonical or "", author or "", summary_text, content_text, *categories]
        ).encode("utf-8", "surrogatepass")
    ).hexdigest()


def entry_key(guid: str | None, canonical: str | None, title: str, date_text: object) -> str:
    """guid, else canonical link, else a hash of title and the feed's own date string.

    The raw date string is used instead of the parsed date so that an entry
    with no date keeps the same key on every poll.
    """
    if guid:
        candidate = guid
    elif canonical:
        candidate = canonical
    else:
        digest = hashlib.sha256(f"{title}\x1f{date_text or ''}".encode()).hexdigest()
        return f"sha256:{digest}"
    if len(candidate) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).hexdigest()
    return candidate
