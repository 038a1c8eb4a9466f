"""OPML subscription lists: read a reader's export, write ours, append feeds to config.toml.

Pure functions: bytes or text in, records and bytes or text out; no files, no network,
no clock (``now`` is an argument).

Reading is deliberately forgiving about what readers put in an OPML file (OPML 1.0 or
2.0, any declared encoding expat knows, ``xmlUrl`` in any letter case, feeds nested in
folders at any depth) and strict about what it accepts as a feed: an absolute http(s)
``xmlUrl``. Outlines that fail are skipped and reported (``read_opml(...).skipped``);
the same URL listed twice is kept once, with the tags of every listing.

Safety: a document with a DOCTYPE or an entity declaration is refused before parsing
(no entity expansion, no external entities). The parser's own declaration handlers refuse
them again, which also covers encodings such as UTF-16 that a search of the raw bytes
cannot see.

Secrets: a URL is written to an OPML file, and printed, as aggregator.text.urls.redact_url
shows it (no user:password@, secret query values as "***"), so an export never carries a
password or a token; an importing reader must be given them again. An import writes the
URL into config.toml as the file gave it (config.toml is where credentials live).

Names: OPML has no feed-name field, so a name is a slug of the publisher; ``render_opml``
also writes the name in an ``aggregator:name`` attribute (in :data:`NAMESPACE`, as OPML
2.0 asks of extra attributes) so an export read back keeps its names.
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat
from xml.sax.saxutils import escape

from aggregator.errors import ConfigError
from aggregator.text.urls import REDACTED, redact_url

__all__ = [
    "IMPORT_COMMENT",
    "NAMESPACE",
    "OpmlDocument",
    "OpmlFeed",
    "SkippedOutline",
    "append_feeds_to_config",
    "parse_opml",
    "read_opml",
    "render_opml",
    "slugify",
]

# Identifies our extra outline attribute (the feed name); only ever compared, never fetched.
NAMESPACE = "https://example.org/aggregator/opml"
IMPORT_COMMENT = "# imported from OPML"
MAX_NAME = 64

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the rule aggregator.config enforces
_SEP = " "  # expat's namespace separator: "uri local"; a space is in neither
_NAME_ATTR = f"{NAMESPACE}{_SEP}name"
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_APOSTROPHES = re.compile(r"['\u2019\u02bc]")
# Characters XML 1.0 does not allow at all, even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed from (or for) an OPML file, shaped like a ``[[feeds]]`` table."""

    name: str
    publisher: str
    url: str
    tags: tuple[str, ...] = ()
    site_url: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedOutline:
    """An ``<outline xmlUrl=...>`` that did not become a feed, and why."""

    line: int
    text: str
    url: str
    reason: str

    def __str__(self) -> str:
        label = f"{self.text!r} " if self.text else ""
        url = redact_url(" ".join(self.url.split()))  # one line, whatever the attribute held
        if "@" in url:  # not read as user:password@ (a "/" in it?): hide up to the last "@"
            scheme, sep, rest = url.partition("://")
            url = f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if sep else REDACTED
        return f"line {self.line}: {label}<{url}>: {self.reason}"


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    """Everything ``read_opml`` found: the head's title, the feeds, what it skipped."""

    title: str | None
    feeds: tuple[OpmlFeed, ...]
    skipped: tuple[SkippedOutline, ...] = ()


# --- reading ----------------------------------------------------------------------------


def parse_opml(data: bytes, *, source: str) -> list[OpmlFeed]:
    """The feeds of an OPML document; see :func:`read_opml` for what was skipped."""
    return list(read_opml(data, source=source).feeds)


def read_opml(data: bytes, *, source: str) -> OpmlDocument:
    """Read an OPML 1.0/2.0 document.

    Raises ConfigError("{source}: ...") when the document is not well-formed XML (with
    line and column), declares a DOCTYPE or entities, is not OPML, or lists no usable feed.
    """
    declaration = _DECLARATION.search(data)
    if declaration:
        line = data.count(b"\n", 0, declaration.start()) + 1
        raise ConfigError(f"{source}: line {line}: {_refusal(declaration.group(1).decode())}")
    reader = _Reader()
    try:
        reader.parser.Parse(data, True)
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code) if e.code is not None else str(e)
        raise ConfigError(
            f"{source}: not well-formed XML: {reason} at line {e.lineno}, column {e.offset + 1}"
        ) from e
    except _Refused as e:
        raise ConfigError(f"{source}: line {e.line}: {e.reason}") from e
    if not reader.seen_body:
        raise ConfigError(f"{source}: no <body> element in <opml>")
    if not reader.outlines:
        raise ConfigError(f"{source}: no feeds: no <outline> in <body> has an xmlUrl attribute")
    feeds, skipped = _feeds_from(reader.outlines)
    if not feeds:
        raise ConfigError(
            f"{source}: no usable feeds: all {len(skipped)} skipped (first: {skipped[0]})"
        )
    title = _clean_text(reader.title) if reader.title is not None else None
    return OpmlDocument(title=title or None, feeds=tuple(feeds), skipped=tuple(skipped))


def _refusal(what: str) -> str:
    return f"<!{what.upper()}> is not allowed in OPML (refused to avoid entity expansion)"


class _Refused(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class _Frame:
    local: str
    in_body: bool
    tags: tuple[str, ...]  # folder tags handed to children


@dataclass(slots=True)
class _Outline:
    line: int
    text: str
    url: str
    site_url: str | None
    tags: tuple[str, ...]
    name: str | None


class _Reader:
    """Streams expat events into a list of feed outlines (no tree is kept)."""

    def __init__(self) -> None:
        parser = expat.ParserCreate(namespace_separator=_SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        self.parser = parser
        self.stack: list[_Frame] = []
        self.outlines: list[_Outline] = []
        self.seen_body = False
        self.title: str | None = None
        self._in_title = False

    def _fail(self, reason: str) -> _Refused:
        return _Refused(self.parser.CurrentLineNumber, reason)

    def _doctype(self, *_args: object) -> None:
        raise self._fail(_refusal("doctype"))

    def _entity(self, *_args: object) -> None:
        raise self._fail(_refusal("entity"))

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(_SEP)[2]
        if not self.stack:
            if local != "opml":
                raise self._fail(f"root element is <{local}>, not <opml>: not an OPML file")
            self.stack.append(_Frame(local, in_body=False, tags=()))
            return
        parent = self.stack[-1]
        tags = parent.tags
        if len(self.stack) == 1 and local == "body":
            self.seen_body = True
            self.stack.append(_Frame(local, in_body=True, tags=()))
            return
        if len(self.stack) == 2 and parent.local == "head" and local == "title":
            self._in_title = True
            self.title = self.title or ""
        if parent.in_body and local == "outline":
            tags = self._outline(attrs, tags)
        self.stack.append(_Frame(local, in_body=parent.in_body, tags=tags))

    def _outline(self, attrs: dict[str, str], inherited: tuple[str, ...]) -> tuple[str, ...]:
        plain = {key.lower(): value for key, value in attrs.items() if _SEP not in key}
        text = _clean_text(plain.get("text", "")) or _clean_text(plain.get("title", ""))
        url = plain.get("xmlurl")
        if url is None:  # a folder: its text tags every feed inside it
            slug = slugify(text)
            return (*inherited, slug) if slug else inherited
        self.outlines.append(
            _Outline(
                line=self.parser.CurrentLineNumber,
                text=text,
                url=url.strip(),
                site_url=plain.get("htmlurl"),
                tags=_unique((*inherited, *_category_tags(plain.get("category", "")))),
                name=attrs.get(_NAME_ATTR),
            )
        )
        return inherited

    def _end(self, _name: str) -> None:
        self.stack.pop()
        self._in_title = False

    def _characters(self, text: str) -> None:
        if self._in_title and self.title is not None:
            self.title += text


def _feeds_from(outlines: Sequence[_Outline]) -> tuple[list[OpmlFeed], list[SkippedOutline]]:
    kept: dict[str, _Outline] = {}
    tags: dict[str, list[str]] = {}
    skipped: list[SkippedOutline] = []
    for outline in outlines:
        try:
            url = _feed_url(outline.url)
        except ValueError as e:
            skipped.append(SkippedOutline(outline.line, outline.text, outline.url, str(e)))
            continue
        key = _url_key(url)
        first = kept.get(key)
        if first is not None:
            tags[key].extend(outline.tags)
            reason = f"same URL as line {first.line}; kept once"
            skipped.append(SkippedOutline(outline.line, outline.text, outline.url, reason))
            continue
        kept[key] = replace(outline, url=url)
        tags[key] = list(outline.tags)

    feeds: list[OpmlFeed] = []
    taken: set[str] = set()
    for key, outline in kept.items():
        publisher = outline.text or _host(outline.url)
        if outline.name and _NAME.fullmatch(outline.name):
            base = outline.name
        else:
            base = slugify(publisher) or slugify(_host(outline.url)) or "feed"
        name = _unique_name(base, taken)
        taken.add(name)
        feeds.append(
            OpmlFeed(
                name=name,
                publisher=publisher,
                url=outline.url,
                tags=_unique(tags[key]),
                site_url=_site_url(outline.site_url),
            )
        )
    return feeds, skipped


def _category_tags(value: str) -> list[str]:
    """OPML 2.0 ``category``: comma-separated, slash-delimited paths ("/a/b,/c")."""
    return [slugify(part) for path in value.split(",") for part in path.split("/")]


# --- shared helpers ---------------------------------------------------------------------


def slugify(text: str) -> str:
    """'Börsen-Zeitung' -> 'borsen-zeitung': ASCII letters and digits joined by '-' (max 64)."""
    folded = unicodedata.normalize("NFKD", _APOSTROPHES.sub("", text))
    ascii_text = folded.encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_SLUG.sub("-", ascii_text).strip("-")[:MAX_NAME].rstrip("-")


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _unique_name(base: str, taken: set[str]) -> str:
    """base, else base-2, base-3, ... trimmed so the whole stays within 64 characters."""
    base = base[:MAX_NAME] or "feed"
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: MAX_NAME - len(suffix)].rstrip("-_") + suffix
        if candidate not in taken:
            return candidate
        number += 1


def _clean_text(value: str) -> str:
    """Attribute text as a person would write it: entities decoded once more (readers
    double-escape), control characters dropped, whitespace collapsed."""
    if "&" in value:
        value = html.unescape(value)
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Cc" or ch.isspace())
    return " ".join(value.split())


def _feed_url(value: str) -> str:
    """The checks aggregator.config applies to a feed URL, plus no spaces or controls."""
    url = value.strip()
    if not url:
        raise ValueError("empty xmlUrl")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        raise ValueError("URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        # urllib quotes the part it could not read, which may be a password.
        raise ValueError("malformed URL" if "@" in url else f"malformed URL ({e})") from e
    if parts.scheme.lower() not in ("http", "https"):
        if not parts.scheme:
            raise ValueError("not an http(s) URL (relative)")
        raise ValueError(f"not an http(s) URL (scheme {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError("URL has no host")
    return url


def _site_url(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return _feed_url(value)
    except ValueError:
        return None


def _url_key(url: str) -> str:
    """Two spellings of one feed URL compare equal: scheme and host case, fragment, and
    credentials (configured URLs are compared as they are shown, without them)."""
    try:
        parts = urlsplit(redact_url(url.strip()))
    except ValueError:
        return url.strip()
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}{query}"


def _host(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


# --- writing ----------------------------------------------------------------------------


def render_opml(feeds: Sequence[OpmlFeed], *, title: str, now: datetime) -> bytes:
    """An OPML 2.0 document (UTF-8) with one ``type="rss"`` outline per feed.

    Tags are written as OPML 2.0 categories ("/markets,/fx"), slugged so they survive
    the trip back. A naive ``now`` is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    created = format_datetime(now.astimezone(UTC), usegmt=True)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<opml version="2.0" xmlns:aggregator="{NAMESPACE}">',
        "  <head>",
        f"    <title>{_xml_text(' '.join(title.split()))}</title>",
        f"    <dateCreated>{created}</dateCreated>",
        "    <docs>http://opml.org/spec2.opml</docs>",
        "  </head>",
        "  <body>",
    ]
    for feed in feeds:
        publisher = " ".join(feed.publisher.split()) or feed.name
        attrs = [
            ("type", "rss"),
            ("text", publisher),
            ("title", publisher),
            ("xmlUrl", redact_url(feed.url.strip())),
        ]
        if feed.site_url:
            attrs.append(("htmlUrl", redact_url(feed.site_url.strip())))
        tags = _unique(slugify(tag) for tag in feed.tags)
        if tags:
            attrs.append(("category", ",".join(f"/{tag}" for tag in tags)))
        if _NAME.fullmatch(feed.name):
            attrs.append(("aggregator:name", feed.name))
        rendered = " ".join(f'{key}="{_xml_attr(value)}"' for key, value in attrs)
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _xml_text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _xml_attr(value: str) -> str:
    return escape(_NOT_XML.sub("", value), _ATTR_ENTITIES)


# --- config.toml ------------------------------------------------------------------------


def append_feeds_to_config(
    config_text: str,
    feeds: Sequence[OpmlFeed],
    existing_names: set[str],
    existing_urls: set[str],
) -> tuple[str, list[OpmlFeed], list[OpmlFeed]]:
    """Append one ``[[feeds]]`` table per new feed to the text of a config.toml.

    Returns (new_text, added, skipped_as_duplicates). ``config_text`` is kept byte for
    byte as the prefix of ``new_text`` (and returned unchanged when nothing is added). A
    feed whose URL is in ``existing_urls``, in the file already, or earlier in ``feeds``
    is a duplicate; a name taken already gets a -2, -3, ... suffix. ``added`` holds the
    feeds as written (final names), with their URLs as shown (``redact_url``): the file
    gets the URL as given, credentials and all, but what is printed must not. Raises
    ConfigError when the text is not valid TOML or could not take ``[[feeds]]`` tables
    (e.g. an inline ``feeds = [...]`` array).
    """
    try:
        document = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config is not valid TOML, not appending to it: {e}") from e
    in_file = _config_feeds(document)
    taken = set(existing_names) | {name for name, _url in in_file}
    seen_urls = {_url_key(url) for url in (*existing_urls, *(url for _name, url in in_file))}

    added: list[OpmlFeed] = []
    written: list[str] = []  # added[i]'s URL as it goes into the file
    skipped: list[OpmlFeed] = []
    for feed in feeds:
        try:
            url = _feed_url(feed.url)
        except ValueError as e:
            raise ConfigError(f"feed {feed.name!r}: {e}") from e
        key = _url_key(url)
        if key in seen_urls:
            skipped.append(feed)
            continue
        seen_urls.add(key)
        if _NAME.fullmatch(feed.name):
            base = feed.name
        else:
            base = slugify(feed.name) or slugify(feed.publisher) or slugify(_host(url)) or "feed"
        name = _unique_name(base, taken)
        taken.add(name)
        written.append(url)
        added.append(
            replace(
                feed,
                name=name,
                publisher=" ".join(feed.publisher.split()) or name,
                url=redact_url(url),
                tags=_unique(tag.strip() for tag in feed.tags),
                site_url=_site_url(feed.site_url),
            )
        )
    if not added:
        return config_text, added, skipped

    newline = "\r\n" if "\r\n" in config_text else "\n"
    block: list[str] = []
    if config_text and not config_text.endswith("\n"):
        block.append("")  # ends the last line of the file
    if config_text.strip():
        block.append("")
    block.append(IMPORT_COMMENT)
    for index, feed in enumerate(added):
        if index:
            block.append("")
        block += [
            "[[feeds]]",
            f"name = {_toml_string(feed.name)}",
            f"publisher = {_toml_string(feed.publisher)}",
            f"url = {_toml_string(written[index])}",
        ]
        if feed.tags:
            block.append(f"tags = [{', '.join(_toml_string(tag) for tag in feed.tags)}]")
        if feed.site_url:  # config.toml has no key for it; keep it for the reader
            block.append(f"# site: {feed.site_url}")
    new_text = config_text + newline.join(block) + newline

    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"cannot append [[feeds]] tables to this config (is feeds an inline array?): {e}"
        ) from e
    return new_text, added, skipped


def _config_feeds(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, url) of the feeds already in a decoded config, ignoring malformed entries."""
    entries = document.get("feeds", [])
    if not isinstance(entries, list):
        return []
    found: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            name, url = entry.get("name"), entry.get("url")
            found.append(
                (name if isinstance(name, str) else "", url if isinstance(url, str) else "")
            )
    return found


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped; other
    Unicode kept as UTF-8; lone surrogates (unwritable) become U+FFFD."""
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
