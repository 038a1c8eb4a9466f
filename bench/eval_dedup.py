"""Evaluate syndication detection end to end: labelled items in, pairwise metrics out.

    eval_dedup.py LABELS.json [--json] [--keep DIR] [--max-list K]
    eval_dedup.py --generate N [--seed S] [--json] [--keep DIR] [--max-list K]

The labelled items are written as RSS 2.0 feeds (one per site, at most 200 items per
feed file), served from a loopback HTTP server, and polled by the real product in a
subprocess (`aggregator --config CONFIG poll --all --json`); the stored items are read
back with `aggregator --config CONFIG items --json --limit 0` and matched to the labels
by feed and url. Two items are predicted copies when they share a story_id and truly
copies when they share a group; precision, recall and F1 are counted over all unordered
pairs of items.

Exit status: 0 when the run worked (the metrics are reported, never enforced), 2 for bad
input, 1 when the product failed (a command exited non-zero, printed something that is
not the expected JSON, or lost a labelled item). Standard library only.
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate, islice
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

MAX_ITEMS_PER_FEED = 200
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_LIST = 10_000
MAX_GENERATE = 1_000_000
REQUIRED_FIELDS = ("id", "site", "url", "title", "text", "group")

# Characters XML 1.0 cannot carry at all, not even escaped.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_DIGITS = re.compile(r"\d+")


class InputError(Exception):
    """Bad arguments or a bad labels file: exit 2."""


class ProductError(Exception):
    """The aggregator command failed or answered something unusable: exit 1."""


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    site: str
    url: str
    title: str
    text: str
    group: str
    published: datetime | None
    # How the page relates to its group (the dev set's labels), for the report.
    relation: str = "-"


@dataclass(frozen=True, slots=True)
class FeedFile:
    name: str
    site: str
    file: str
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the product said about one label."""

    label: Label
    item_id: object
    story: str
    relation: str
    similarity: str


@dataclass(frozen=True, slots=True)
class PollRun:
    seconds: float
    startup_seconds: float
    feeds: int
    failed: tuple[str, ...]
    stderr_tail: str
    # Sum of the product's own dedup-stage timings (prepare, sign, link), when reported.
    dedup_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Metrics:
    items: int
    pairs: int
    true_links: int
    predicted_links: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --- labels -----------------------------------------------------------------------------


def natural_key(text: str) -> str:
    """Sort key that puts 'a2' before 'a10'."""
    return _DIGITS.sub(lambda m: m.group().zfill(20), text)


def _identifier(value: object, where: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: {name!r} must be a string or an integer")
    text = str(value)
    if not text.strip():
        raise InputError(f"{where}: {name!r} must not be empty")
    return text


def _published(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: 'published' must be an ISO 8601 string or null")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise InputError(f"{where}: 'published' {value!r} is not ISO 8601") from e
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def label_from_json(raw: object, index: int) -> Label:
    where = f"item {index}"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object, got {type(raw).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in raw]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    item_id = _identifier(raw["id"], where, "id")
    where = f"item {index} (id {item_id})"
    for name in ("site", "url", "title", "text"):
        if not isinstance(raw[name], str):
            raise InputError(f"{where}: {name!r} must be a string")
    site, url = raw["site"].strip(), raw["url"].strip()
    if not site:
        raise InputError(f"{where}: 'site' must not be empty")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InputError(f"{where}: 'url' {url!r} is not an absolute http(s) URL")
    return Label(
        id=item_id,
        site=site,
        url=url,
        title=raw["title"],
        text=raw["text"],
        group=_identifier(raw["group"], where, "group"),
        published=_published(raw.get("published"), where),
        relation=str(raw.get("relation") or "-"),
    )


def moved_up_to(labels: list[Label], now: datetime) -> list[Label]:
    """The labels with their dates moved, spacing kept, so the newest is a day before `now`.

    An undated item is published when it is first polled, now; against dates written
    weeks ago it would fall outside the dedup window, and the result would depend on
    the day the evaluation runs.
    """
    dated = [label.published for label in labels if label.published is not None]
    if not dated:
        return labels
    shift = now - timedelta(days=1) - max(dated)
    return [
        replace(label, published=label.published + shift) if label.published else label
        for label in labels
    ]


def load_labels(path: Path) -> list[Label]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from e
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of items")
    if not data:
        raise InputError(f"{path}: the list of items is empty")
    try:
        labels = [label_from_json(item, index) for index, item in enumerate(data)]
    except InputError as e:
        raise InputError(f"{path}: {e}") from e
    check_unique(labels, str(path))
    return labels


def check_unique(labels: Sequence[Label], where: str) -> None:
    """Ids are unique. A site may list one url twice (the same page crawled twice with
    other content): plan_feeds() serves the second as another feed of the site."""
    ids: set[str] = set()
    for label in labels:
        if label.id in ids:
            raise InputError(f"{where}: duplicate id {label.id!r}")
        ids.add(label.id)


def labels_to_json(labels: Sequence[Label]) -> list[dict[str, str | None]]:
    return [
        {
            "id": label.id,
            "site": label.site,
            "url": label.url,
            "title": label.title,
            "text": label.text,
            "published": label.published.isoformat() if label.published else None,
            "group": label.group,
        }
        for label in labels
    ]


# --- synthetic labels ---------------------------------------------------------------------

_ONSETS = (
    *("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"),
    *("br", "st", "tr", "kr", "pl", "gr", "sh", "ch", "fl", "dr"),
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ea", "y")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "x", "m", "nd", "rk")


class WordSource:
    """Invented vocabulary with a Zipf-like frequency, plus financial-looking figures."""

    def __init__(self, rng: random.Random, size: int = 400) -> None:
        self._rng = rng
        seen: dict[str, None] = {}
        while len(seen) < size:
            syllables = rng.choice((1, 2, 2, 2, 3, 3))
            word = "".join(
                rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                for _ in range(syllables)
            )
            if len(word) >= 3:
                seen[word] = None
        self.vocabulary = list(seen)
        self._cumulative = list(accumulate(1.0 / (rank + 1) ** 0.75 for rank in range(size)))

    def figure(self) -> str:
        rng = self._rng
        kind = rng.randrange(6)
        if kind == 0:
            return f"{rng.uniform(0.1, 99.9):.1f}%"
        if kind == 1:
            return (
                f"${rng.randint(1, 950)}.{rng.randint(0, 9)} {rng.choice(('million', 'billion'))}"
            )
        if kind == 2:
            return f"{rng.randint(1_000, 99_999):,}"
        if kind == 3:
            return f"Q{rng.randint(1, 4)}"
        if kind == 4:
            return str(rng.randint(2015, 2026))
        return str(rng.randint(2, 999))

    def words(self, count: int) -> list[str]:
        chosen = self._rng.choices(self.vocabulary, cum_weights=self._cumulative, k=count)
        return [self.figure() if self._rng.random() < 0.07 else word for word in chosen]

    def sentence(self, low: int = 8, high: int = 20) -> str:
        words = self.words(self._rng.randint(low, high))
        if len(words) > 6 and self._rng.random() < 0.4:
            cut = self._rng.randint(3, len(words) - 3)
            words[cut] += ","
        return " ".join(words)[:1].upper() + " ".join(words)[1:] + "."

    def story(self) -> list[list[str]]:
        """Paragraphs of sentences, 150 to 400 words in all."""
        target = self._rng.randint(150, 380)
        sentences: list[str] = []
        total = 0
        while total < target:
            sentence = self.sentence()
            sentences.append(sentence)
            total += len(sentence.split())
        paragraphs: list[list[str]] = []
        while sentences:
            take = self._rng.randint(2, 4)
            paragraphs.append(sentences[:take])
            sentences = sentences[take:]
        return paragraphs

    def title(self) -> str:
        return " ".join(w[:1].upper() + w[1:] for w in self.words(self._rng.randint(6, 11)))


def _text(paragraphs: Sequence[Sequence[str]]) -> str:
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _label(
    rng: random.Random,
    group: str,
    k: int,
    site: str,
    slug: str,
    paragraphs: Sequence[Sequence[str]],
    title: str,
    when: datetime,
) -> Label:
    number = rng.randint(10_000, 99_999)
    return Label(
        id=f"{group}-{k}",
        site=site,
        url=f"https://www.{site}-news.example/{when:%Y/%m/%d}/{slug}-{number}",
        title=title,
        text=_text(paragraphs),
        group=group,
        published=when,
    )


def generate_labels(count: int, seed: int, now: datetime) -> list[Label]:
    """`count` labelled items: ~25% of stories copied 1-3 times onto other sites."""
    rng = random.Random(seed)
    source = WordSource(rng)
    sites = [f"s{n:02d}" for n in range(1, 31)]
    site_weights = [rng.uniform(0.5, 3.0) for _ in sites]
    authors = {site: " ".join(source.title().split()[:2]) for site in sites}
    disclaimers = {
        site: "Disclaimer: " + " ".join(source.sentence(12, 20) for _ in range(2)) for site in sites
    }
    # Anchored to the hour a few hours back, so the newest copy is still in the past
    # (the product clamps future dates to the time it first saw an item).
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    start = end - timedelta(days=10)

    labels: list[Label] = []
    story = 0
    while len(labels) < count:
        story += 1
        group = f"g{story:06d}"
        site = rng.choices(sites, weights=site_weights)[0]
        paragraphs = source.story()
        title = source.title()
        published = start + timedelta(seconds=rng.randint(0, 10 * 86400))
        slug = "-".join(title.lower().split()[:5])

        labels.append(_label(rng, group, 0, site, slug, paragraphs, title, published))
        copies = rng.randint(1, 3) if rng.random() < 0.25 else 0
        copies = min(copies, count - len(labels))
        for k, other in enumerate(rng.sample([s for s in sites if s != site], copies), start=1):
            when = published + timedelta(minutes=rng.randint(5, 300))
            kind = rng.randrange(3)
            if kind == 0:  # verbatim, with the site's chrome line and disclaimer
                chrome = (
                    f"By {authors[other]} | {other.upper()} Markets | {when:%d %b %Y %H:%M} UTC"
                )
                body = [[chrome], *paragraphs, [disclaimers[other]]]
            elif kind == 1:  # the first two paragraphs only
                body = [list(p) for p in paragraphs[:2]]
            else:  # one or two sentences dropped
                body = [list(p) for p in paragraphs]
                for _ in range(rng.randint(1, 2)):
                    flat = [(i, j) for i, p in enumerate(body) for j in range(len(p))]
                    i, j = rng.choice(flat)
                    del body[i][j]
                body = [p for p in body if p]
            copy_title = title if rng.random() < 0.8 else f"{title} - {other.upper()}"
            labels.append(_label(rng, group, k, other, slug, body, copy_title, when))
    return labels


# --- feeds, server, config ----------------------------------------------------------------


def xml_text(value: str) -> str:
    return escape(_XML_INVALID.sub("", value))


def text_to_html(text: str) -> str:
    paragraphs = (p.strip() for p in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")))
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs if p)


def slugify(site: str, taken: set[str]) -> str:
    base = _SLUG_JUNK.sub("-", site.lower()).strip("-")[:48].strip("-") or "site"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def plan_feeds(labels: Sequence[Label]) -> list[FeedFile]:
    """One feed per site, newest first; a site with more than 200 items gets -pN feeds.

    A url a site lists again (the same page crawled twice) goes to another feed of
    the site, -rN, as a second crawl of the page would reach the product.
    """
    by_site: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_site[label.site].append(label)
    taken: set[str] = set()
    feeds: list[FeedFile] = []
    for site in sorted(by_site):
        slug = slugify(site, taken)
        crawls: list[list[Label]] = []
        seen: Counter[str] = Counter()
        for label in by_site[site]:
            crawl = seen[label.url]
            seen[label.url] += 1
            if crawl == len(crawls):
                crawls.append([])
            crawls[crawl].append(label)
        for crawl, crawled in enumerate(crawls, start=1):
            base = slug if crawl == 1 else f"{slug}-r{crawl}"
            items = sorted(
                crawled,
                key=lambda x: x.published.timestamp() if x.published else float("-inf"),
                reverse=True,
            )
            chunks = [
                tuple(items[i : i + MAX_ITEMS_PER_FEED])
                for i in range(0, len(items), MAX_ITEMS_PER_FEED)
            ]
            for page, chunk in enumerate(chunks, start=1):
                name = base if len(chunks) == 1 else f"{base}-p{page}"
                feeds.append(FeedFile(name=name, site=site, file=f"{name}.xml", labels=chunk))
    return feeds


def write_feed(path: Path, feed: FeedFile) -> int:
    """Write one RSS 2.0 document; returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>\n')
        out.write(f"<title>{xml_text(feed.site)}</title>\n")
        out.write(f"<link>https://{feed.name}.example/</link>\n")
        out.write(f"<description>eval_dedup feed {xml_text(feed.name)}</description>\n")
        for label in feed.labels:
            out.write("<item>\n")
            out.write(f'<guid isPermaLink="false">{xml_text(label.id)}</guid>\n')
            out.write(f"<link>{xml_text(label.url)}</link>\n")
            out.write(f"<title>{xml_text(label.title)}</title>\n")
            if label.published is not None:
                out.write(f"<pubDate>{format_datetime(label.published, usegmt=True)}</pubDate>\n")
            out.write(f"<description>{xml_text(text_to_html(label.text))}</description>\n")
            out.write("</item>\n")
        out.write("</channel>\n</rss>\n")
    return path.stat().st_size


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 on a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="eval-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def toml_string(value: str) -> str:
    out = []
    for ch in _XML_INVALID.sub("", value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif (ch < " " and ch != "\t") or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_config(path: Path, db: Path, base_url: str, feeds: Sequence[FeedFile], cap: int) -> None:
    lines = [
        "# Written by bench/eval_dedup.py for one evaluation run.",
        "[storage]",
        f"path = {toml_string(str(db))}",
        "",
        "[polling]",
        'timeout = "120s"',
        f"max_bytes = {cap}",
    ]
    for feed in feeds:
        lines += [
            "",
            "[[feeds]]",
            f"name = {toml_string(feed.name)}",
            f"publisher = {toml_string(feed.site)}",
            f"url = {toml_string(f'{base_url}/{feed.file}')}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- running the product ------------------------------------------------------------------


def product_command() -> list[str]:
    """The `aggregator` script next to this interpreter, else `python -m aggregator`."""
    script = Path(sys.executable).parent / "aggregator"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "aggregator"]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


class Product:
    def __init__(self, config: Path, workdir: Path) -> None:
        self._command = product_command()
        self._config = config
        self._workdir = workdir
        self._env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
        self._env["PYTHONUTF8"] = "1"

    def run(self, *args: str, stdout: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [*self._command, "--config", str(self._config), *args]
        try:
            if stdout is None:
                return subprocess.run(
                    command,
                    cwd=self._workdir,
                    env=self._env,
                    capture_output=True,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    check=False,
                )
            with stdout.open("w", encoding="utf-8") as sink:
                return subprocess.run(
                    command,
                    cwd=self._workdir,
                    env=self._env,
                    stdout=sink,
                    stderr=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    check=False,
                )
        except OSError as e:
            raise ProductError(f"cannot run {' '.join(command[:3])}: {e}") from e

    @staticmethod
    def check(result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            raise ProductError(
                f"`aggregator {what}` failed (exit {result.returncode}): {last_line(result.stderr)}"
            )

    def startup_seconds(self) -> float:
        started = time.perf_counter()
        result = self.run("--version")
        elapsed = time.perf_counter() - started
        self.check(result, "--version")
        return elapsed

    def poll(self) -> PollRun:
        startup = self.startup_seconds()
        started = time.perf_counter()
        result = self.run("poll", "--all", "--json")
        seconds = time.perf_counter() - started
        self.check(result, "poll --all")
        feeds = 0
        dedup_seconds = 0.0
        failed: list[str] = []
        for line in result.stdout.splitlines():
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(report, dict):
                continue
            feeds += 1
            dedup = report.get("dedup_seconds")
            if isinstance(dedup, int | float):
                dedup_seconds += float(dedup)
            if report.get("error") or report.get("outcome") not in ("ok", "not_modified"):
                failed.append(
                    f"{report.get('feed')}: {report.get('outcome')}: {report.get('error')}"
                )
        tail = last_line(result.stderr) if result.stderr.strip() else ""
        return PollRun(seconds, startup, feeds, tuple(failed), tail, dedup_seconds)

    def items(self, expected: int, sink: Path) -> list[dict[str, Any]]:
        result = self.run("items", "--json", "--limit", "0", stdout=sink)
        if result.returncode == 2 and "--limit" in result.stderr:
            warn(
                "`items --limit 0` (no limit) is refused by this aggregator "
                f"({last_line(result.stderr)}); asking for --limit {expected + 1000} instead"
            )
            result = self.run("items", "--json", "--limit", str(expected + 1000), stdout=sink)
        self.check(result, "items --json")
        keep = {"id", "feed", "url", "story_id", "parent_id", "relation", "similarity"}

        def only_needed(obj: dict[str, Any]) -> dict[str, Any]:
            # Keeps memory flat: summaries and titles are dropped as they are parsed.
            return {k: v for k, v in obj.items() if k in keep}

        try:
            with sink.open(encoding="utf-8") as source:
                data = json.load(source, object_hook=only_needed)
        except (OSError, json.JSONDecodeError) as e:
            raise ProductError(f"`aggregator items --json` did not print JSON: {e}") from e
        if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
            raise ProductError("`aggregator items --json` did not print a JSON array of objects")
        return data


# --- matching and metrics -----------------------------------------------------------------


def _show_similarity(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4f}"
    return "-"


def match_items(
    labels: Sequence[Label], feeds: Sequence[FeedFile], items: Sequence[dict[str, Any]]
) -> tuple[list[Outcome], list[Label]]:
    """Stored items back to labels by (feed, url); the rest count as missing."""
    by_key = {(feed.name, label.url): label for feed in feeds for label in feed.labels}
    found: dict[str, Outcome] = {}
    has_story = sum(1 for item in items if item.get("story_id") is not None)
    if items and not any("story_id" in item for item in items):
        warn("`items --json` has no story_id yet: every item counts as its own story")
    elif has_story < len(items):
        warn(f"{len(items) - has_story} items have no story_id: each counts as its own story")
    stray = duplicates = 0
    for item in items:
        url = item.get("url")
        label = by_key.get((str(item.get("feed")), url)) if isinstance(url, str) else None
        if label is None:
            stray += 1
            continue
        if label.id in found:
            duplicates += 1
            continue
        story_id = item.get("story_id")
        found[label.id] = Outcome(
            label=label,
            item_id=item.get("id"),
            story=f"self:{item.get('id')}" if story_id is None else str(story_id),
            relation=str(item.get("relation") or "-"),
            similarity=_show_similarity(item.get("similarity")),
        )
    if stray:
        warn(f"{stray} stored items match no label (by feed and url); they are ignored")
    if duplicates:
        warn(f"{duplicates} labels came back more than once; the first copy is used")
    missing = [label for label in labels if label.id not in found]
    outcomes = list(found.values())
    for label in missing:
        outcomes.append(Outcome(label, None, f"missing:{label.id}", "missing", "-"))
    outcomes.sort(key=lambda o: natural_key(o.label.id))
    return outcomes, missing


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def compute_metrics(outcomes: Sequence[Outcome]) -> Metrics:
    cells = Counter((o.story, o.label.group) for o in outcomes)
    stories = Counter(o.story for o in outcomes)
    groups = Counter(o.label.group for o in outcomes)
    tp = sum(pairs(n) for n in cells.values())
    predicted = sum(pairs(n) for n in stories.values())
    true = sum(pairs(n) for n in groups.values())
    fp, fn = predicted - tp, true - tp
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(outcomes)
    return Metrics(n, pairs(n), true, predicted, tp, fp, fn, precision, recall, f1)


def _pairs_where(
    outcomes: Sequence[Outcome], key: Callable[[Outcome], str], differs: Callable[[Outcome], str]
) -> Iterator[tuple[Outcome, Outcome]]:
    """Pairs (a, b), a before b in id order, equal under `key` and different under `differs`.

    Yields in sorted order without building the whole list, so a product that links
    everything to everything cannot exhaust memory.
    """
    members: dict[str, list[int]] = defaultdict(list)
    position: list[int] = []
    for index, outcome in enumerate(outcomes):
        bucket = members[key(outcome)]
        position.append(len(bucket))
        bucket.append(index)
    for index, outcome in enumerate(outcomes):
        for other in members[key(outcome)][position[index] + 1 :]:
            if differs(outcomes[other]) != differs(outcome):
                yield outcome, outcomes[other]


def false_links(outcomes: Sequence[Outcome]) -> Iterator[tuple[Outcome, Outcome]]:
    return _pairs_where(outcomes, lambda o: o.story, lambda o: o.label.group)


def misses(outcomes: Sequence[Outcome]) -> Iterator[tuple[Outcome, Outcome]]:
    return _pairs_where(outcomes, lambda o: o.label.group, lambda o: o.story)


def by_relation(found: Iterator[tuple[Outcome, Outcome]]) -> Counter[str]:
    """Pairs counted by the two pages' relations (from labels that carry one)."""
    return Counter("/".join(sorted((a.label.relation, b.label.relation))) for a, b in found)


def final_line(m: Metrics, seconds: float, dedup_seconds: float = 0.0) -> str:
    rate = m.items / seconds if seconds > 0 else 0.0
    dedup_rate = m.items / dedup_seconds if dedup_seconds > 0 else 0.0
    return (
        f"eval: items={m.items} pairs={m.pairs} precision={m.precision:.4f} "
        f"recall={m.recall:.4f} f1={m.f1:.4f} fp={m.fp} fn={m.fn} "
        f"seconds={seconds:.3f} items_per_s={rate:.1f} "
        f"dedup_seconds={dedup_seconds:.3f} dedup_items_per_s={dedup_rate:.1f}"
    )


# --- the run ------------------------------------------------------------------------------


@contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="eval_dedup-") as name:
            yield Path(name)
        return
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise InputError(f"--keep {keep}: must be a new or empty directory")
    try:
        keep.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--keep {keep}: cannot create: {e.strerror or e}") from e
    yield keep.resolve()


def evaluate(labels: list[Label], args: argparse.Namespace) -> int:
    feeds = plan_feeds(labels)
    with workspace(args.keep) as work:
        feed_dir = work / "feeds"
        feed_dir.mkdir()
        largest = max(write_feed(feed_dir / feed.file, feed) for feed in feeds)
        if args.generate is not None and args.keep is not None:
            with (work / "labels.json").open("w", encoding="utf-8") as out:
                json.dump(labels_to_json(labels), out, ensure_ascii=False, indent=1)
        config = work / "config.toml"
        product = Product(config, work)
        with serve(feed_dir) as base_url:
            write_config(
                config, work / "aggregator.db", base_url, feeds, max(DEFAULT_MAX_BYTES, 2 * largest)
            )
            poll = product.poll()
        for failure in poll.failed:
            warn(f"feed {failure}")
        if poll.stderr_tail:
            warn(f"`aggregator poll` wrote to stderr; last line: {poll.stderr_tail}")
        items = product.items(len(labels), work / "items.json")
        if args.keep is not None:
            print(
                f"kept {work}: config.toml, feeds/, aggregator.db, items.json"
                + (", labels.json" if args.generate is not None else ""),
                file=sys.stderr,
            )
    outcomes, missing = match_items(labels, feeds, items)
    del items
    metrics = compute_metrics(outcomes)
    report(args, labels, feeds, poll, outcomes, metrics, missing)
    for label in missing[:20]:
        print(
            f"error: label {label.id} (site {label.site!r}, url {label.url}) "
            "did not come back from `aggregator items`",
            file=sys.stderr,
        )
    if len(missing) > 20:
        print(f"error: ... and {len(missing) - 20} more labels missing", file=sys.stderr)
    return 1 if missing else 0


def report(
    args: argparse.Namespace,
    labels: Sequence[Label],
    feeds: Sequence[FeedFile],
    poll: PollRun,
    outcomes: Sequence[Outcome],
    m: Metrics,
    missing: Sequence[Label],
) -> None:
    limit: int | None = args.max_list or None
    sites = len({label.site for label in labels})
    groups = Counter(label.group for label in labels)
    copied = sum(1 for n in groups.values() if n > 1)
    rate = m.items / poll.seconds if poll.seconds > 0 else 0.0
    if args.json:
        document = {
            "items": m.items,
            "pairs": m.pairs,
            "precision": round(m.precision, 6),
            "recall": round(m.recall, 6),
            "f1": round(m.f1, 6),
            "tp": m.tp,
            "fp": m.fp,
            "fn": m.fn,
            "predicted_links": m.predicted_links,
            "true_links": m.true_links,
            "seconds": round(poll.seconds, 3),
            "items_per_s": round(rate, 1),
            "dedup_seconds": round(poll.dedup_seconds, 3),
            "dedup_items_per_s": round(m.items / poll.dedup_seconds, 1)
            if poll.dedup_seconds > 0
            else 0.0,
            "startup_seconds": round(poll.startup_seconds, 3),
            "sites": sites,
            "feeds": len(feeds),
            "groups": len(groups),
            "groups_with_copies": copied,
            "stories": len({o.story for o in outcomes}),
            "missing": [label.id for label in missing],
            "failed_feeds": list(poll.failed),
            "false_links": [
                {
                    "a": a.label.id,
                    "b": b.label.id,
                    "group_a": a.label.group,
                    "group_b": b.label.group,
                    "relation_a": a.relation,
                    "relation_b": b.relation,
                    "similarity_a": a.similarity,
                    "similarity_b": b.similarity,
                }
                for a, b in islice(false_links(outcomes), limit)
            ],
            "misses": [
                {"a": a.label.id, "b": b.label.id, "group": a.label.group}
                for a, b in islice(misses(outcomes), limit)
            ],
            "false_links_by_relation": dict(by_relation(false_links(outcomes)).most_common()),
            "misses_by_relation": dict(by_relation(misses(outcomes)).most_common()),
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return
    print(
        f"labels: {len(labels)} items on {sites} sites in {len(feeds)} feeds; "
        f"{len(groups)} groups, {copied} with copies"
    )
    print(
        f"poll: {poll.feeds} feeds in {poll.seconds:.3f}s "
        f"(start-up alone, `aggregator --version`: {poll.startup_seconds:.3f}s)"
    )
    print(f"precision {m.precision:.4f}  recall {m.recall:.4f}  f1 {m.f1:.4f}")
    print(
        f"TP {m.tp}  FP {m.fp}  FN {m.fn}  "
        f"(predicted links {m.predicted_links}, true links {m.true_links})"
    )
    print(f"false links: {m.fp}")
    for a, b in islice(false_links(outcomes), limit):
        print(
            f"  false link {a.label.id} ~ {b.label.id}  groups {a.label.group} / {b.label.group}"
            f"  relations {a.relation} / {b.relation}  similarity {a.similarity} / {b.similarity}"
        )
    if limit is not None and m.fp > limit:
        print(f"  ... and {m.fp - limit} more false links (see --max-list)")
    print(f"misses: {m.fn}")
    for a, b in islice(misses(outcomes), limit):
        print(
            f"  miss {a.label.id} ~ {b.label.id}  group {a.label.group}"
            f"  relations {a.relation} / {b.relation}"
        )
    if limit is not None and m.fn > limit:
        print(f"  ... and {m.fn - limit} more misses (see --max-list)")
    if any(label.relation != "-" for label in labels):
        for what, found in (("false links", false_links), ("misses", misses)):
            counts = by_relation(found(outcomes)).most_common()
            shown = ", ".join(f"{kind} {n}" for kind, n in counts) or "none"
            print(f"{what} by relation: {shown}")
    print(final_line(m, poll.seconds, poll.dedup_seconds))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
        if value < low or (high is not None and value > high):
            upper = f" to {high}" if high is not None else " or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low}{upper})")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eval_dedup.py",
        description="Run the real aggregator over labelled items and score its story links.",
    )
    parser.add_argument(
        "labels",
        nargs="?",
        type=Path,
        metavar="LABELS.json",
        help='JSON list of {"id","site","url","title","text","published"?,"group"}',
    )
    parser.add_argument(
        "--generate",
        type=_count(1, MAX_GENERATE),
        metavar="N",
        help="generate N synthetic labelled items instead of reading a file",
    )
    parser.add_argument(
        "--seed", type=int, metavar="S", help="random seed for --generate (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep feeds, config, database and items.json in DIR (new or empty)",
    )
    parser.add_argument(
        "--max-list",
        type=_count(0),
        default=DEFAULT_MAX_LIST,
        metavar="K",
        help=f"list at most K false links and K misses (default {DEFAULT_MAX_LIST}; 0 = all)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.labels is None) == (args.generate is None):
        parser.error("give either LABELS.json or --generate N")
    if args.seed is not None and args.generate is None:
        parser.error("--seed only applies to --generate")
    try:
        if args.generate is not None:
            seed = 1 if args.seed is None else args.seed
            labels = generate_labels(args.generate, seed, datetime.now(UTC))
        else:
            labels = moved_up_to(load_labels(args.labels), datetime.now(UTC))
        return evaluate(labels, args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ProductError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
