"""`aggregator import FILE`: load archived news (JSONL) through the same link-and-store path.

Each line is a JSON object with `title`, `url`, `published` (ISO 8601), `publisher` and
`text` or `html` (optionally `id`). Items are grouped per publisher into a pseudo-feed
(`import-<publisher>`, never polled), stored in batches in publish order, and linked
to stories exactly as polled items are. Re-running skips what is already stored (the
entry key is `id`, else the canonical URL), so an interrupted import resumes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from aggregator.errors import UsageError
from aggregator.linker import Linker
from aggregator.models import ChangeStatus, Feed, ParsedEntry, Settings
from aggregator.parse import content_hash, entry_key
from aggregator.store import Store
from aggregator.text import canonical_url, html_to_text, normalize_space, plain_text
from aggregator.workers import Context, Digester, ItemDigest, Pair, Weighed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportResult:
    read: int
    new: int
    already_stored: int
    skipped: int
    first_problem: str | None
    links: Counter[str]
    # Pairs of texts weighed for a verdict: "ahead" in worker processes, or "here".
    weighings: Counter[str] = field(default_factory=Counter)


# A line this long is not one article but a whole archive on one line (a JSON array
# instead of JSON lines, say): it is passed over rather than read into memory at once.
MAX_LINE_BYTES = 16 * 1024 * 1024


def _lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines, None for each one longer than MAX_LINE_BYTES."""
    while line := handle.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(1024 * 1024)
            yield None
            continue
        yield line


def _records(path: Path) -> Iterator[tuple[int, dict[str, object] | str]]:
    try:
        handle = path.open("rb")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
    with handle:
        for number, raw in enumerate(_lines(handle), start=1):
            if raw is None:
                yield number, f"line {number}: longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
                continue
            # Line by line, so one line in another encoding costs that line, not the
            # import; a byte-order mark is allowed where a file starts.
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield (
                    number,
                    f"line {number}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})",
                )
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield number, f"line {number}: not JSON ({e.msg})"
                continue
            yield number, record if isinstance(record, dict) else f"line {number}: not an object"


def _entry(record: dict[str, object], now: datetime) -> tuple[str, ParsedEntry]:
    publisher = str(record.get("publisher") or "").strip()
    # Plain text, like "text" and like our own export's titles: a wire headline's
    # "<TM>" is the company's symbol, not a tag to drop.
    title = " ".join(plain_text(str(record.get("title") or "")).split())
    if not publisher:
        raise ValueError("no publisher")
    html = str(record.get("html") or "")
    text = normalize_space(str(record["text"])) if record.get("text") else html_to_text(html)
    if not text and not title:
        raise ValueError("no title and no text")
    published_text = str(record.get("published") or "")
    published: datetime | None = None
    if published_text:
        try:
            published = datetime.fromisoformat(published_text.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"published {published_text!r} is not ISO 8601") from e
        published = (
            published.replace(tzinfo=UTC) if published.tzinfo is None else published.astimezone(UTC)
        )
    url = str(record.get("url") or "") or None
    canonical = canonical_url(url)
    guid = str(record.get("id") or "") or None
    return publisher, ParsedEntry(
        key=entry_key(guid, canonical, title, published_text),
        guid=guid,
        url=url,
        canonical_url=canonical,
        title=title,
        author=None,
        published=min(published or now, now),
        published_from_feed=published is not None,
        updated=None,
        summary_html="",
        summary_text="",
        content_html=html,
        content_text=text,
        categories=(),
        content_hash=content_hash(title, canonical, None, "", text),
    )


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in _lines(handle) if line is None or line.strip())
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e


class _Group:
    """One publisher's share of a batch, with its digests under way."""

    def __init__(
        self,
        feed: Feed,
        entries: list[ParsedEntry],
        todo: list[ParsedEntry],
        wait: Callable[[], list[ItemDigest]],
    ) -> None:
        self.feed = feed
        self.entries = entries
        self.todo = todo
        self._wait = wait
        self._digests: list[ItemDigest] | None = None

    def digests(self) -> list[ItemDigest]:
        """The digests of `todo`, in order (waits for them once)."""
        if self._digests is None:
            self._digests = self._wait()
        return self._digests


def run_import(
    store: Store,
    settings: Settings,
    path: Path,
    *,
    now: datetime,
    batch: int = 500,
    progress: Callable[[int], None] = lambda done: None,
) -> ImportResult:
    """Store and link the records of a JSONL file, oldest first within each batch.

    Two stages overlap: while the writer stores and links one batch, worker
    processes (`[daemon] processes`) prepare and sign the next one's texts.
    """
    linker = Linker(store, settings)
    read = new = same = skipped = 0
    problem: str | None = None
    links: Counter[str] = Counter()
    feeds: dict[str, Feed] = {}

    def start(pending: list[tuple[str, ParsedEntry]], digester: Digester) -> list[_Group]:
        # Publish order across the batch, so originals are stored before their copies.
        pending.sort(key=lambda pair: pair[1].published)
        by_publisher: dict[str, list[ParsedEntry]] = {}
        for publisher, entry in pending:
            by_publisher.setdefault(publisher, []).append(entry)
        groups = []
        for publisher, entries in by_publisher.items():
            if publisher not in feeds:
                feeds[publisher] = store.archive_feed(publisher, now)
            feed = feeds[publisher]
            # A re-run skips what is stored unchanged without preparing its text again.
            stored = store.stored_entries(feed.id, [e.key for e in entries])
            todo = [e for e in entries if e.key not in stored or stored[e.key][1] != e.content_hash]
            context = Context(linker.boilerplate_now(feed.id), settings.dedup, linker.publishers)
            wait = digester.texts_later([(e.title, e.body_text, e.html) for e in todo], context)
            groups.append(_Group(feed, entries, todo, wait))
        return groups

    def weigh(
        groups: list[_Group], before: list[_Group], digester: Digester
    ) -> Callable[[], Mapping[Pair, Weighed]]:
        # The pairs the batch's linking will weigh, weighed in the workers while the
        # writer stores the batch before: preparing texts was a third of its time.
        if not digester.parallel or not groups:
            return dict
        pairs = linker.weigh_ahead(
            [(g.feed, g.todo, g.digests()) for g in groups],
            [(g.feed, g.todo, g.digests()) for g in before],
        )
        return digester.weigh_later(pairs, settings.dedup)

    def finish(groups: list[_Group], weighed: Callable[[], Mapping[Pair, Weighed]]) -> None:
        # One transaction a batch: a commit costs about a millisecond, and a batch
        # holds a few hundred items from a few dozen publishers.
        nonlocal new, same
        if not groups:
            return
        found: Counter[str] = Counter()
        batch_new = batch_same = 0
        try:
            with store.transaction():
                linker.use_weighed(weighed())
                for group in groups:
                    digests = {e.key: d for e, d in zip(group.todo, group.digests(), strict=True)}
                    changes = store.upsert_entries(group.feed, group.entries, now)
                    found.update(linker.link_changes(group.feed, changes, now, digests))
                    batch_new += sum(1 for c in changes if c.status is ChangeStatus.NEW)
                    batch_same += sum(1 for c in changes if c.status is not ChangeStatus.NEW)
        except BaseException:
            linker.rollback()
            raise
        linker.commit()
        links.update(found)
        new += batch_new
        same += batch_same
        store.index_if_many()
        progress(sum(len(group.entries) for group in groups))

    # Three batches in flight: the workers digest the newest (`ahead`) and weigh the
    # next (`following`) while the writer stores the oldest (`current`).
    pending: list[tuple[str, ParsedEntry]] = []
    current: list[_Group] = []
    current_weighed: Callable[[], Mapping[Pair, Weighed]] = dict
    following: list[_Group] = []
    full_batches = 0
    # A file smaller than one batch is not worth starting worker processes for.
    with Digester(settings.daemon.processes, fork=True) as workers, Digester(1) as here:
        for number, record in _records(path):
            read += 1
            if isinstance(record, str):
                skipped += 1
                problem = problem or record
                continue
            try:
                pending.append(_entry(record, now))
            except (ValueError, KeyError) as e:
                skipped += 1
                problem = problem or f"line {number}: {e}"
                continue
            if len(pending) >= batch:
                ahead = start(pending, workers)
                full_batches += 1
                pending = []
                following_weighed = weigh(following, current, workers)
                finish(current, current_weighed)
                current, current_weighed, following = following, following_weighed, ahead
        digester = workers if full_batches else here
        last = start(pending, digester) if pending else []
        following_weighed = weigh(following, current, digester)
        finish(current, current_weighed)
        last_weighed = weigh(last, following, digester)
        finish(following, following_weighed)
        finish(last, last_weighed)
    store.index_pending()
    log.debug("pairs weighed ahead in workers / on the writer: %s", dict(linker.weighings))
    return ImportResult(read, new, same, skipped, problem, links, linker.weighings)
