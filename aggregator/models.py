"""Frozen records handed from one stage to the next.

Nothing here does I/O. Times are timezone-aware UTC datetimes; durations are
seconds as floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


class Shipped:
    """Base of the records that worker processes send back and forth.

    They are pickled as their constructor's arguments. The default for a frozen
    dataclass with slots looks its fields up again for every object, at both
    ends: a feed's worth of entries and digests took 31 us an entry to send, this 23.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        cls = type(self)
        return cls, tuple(map(self.__getattribute__, cls.__slots__))


@dataclass(frozen=True, slots=True)
class PollingSettings:
    """Per-feed polling knobs; the `[polling]` table gives defaults, a feed may override."""

    interval: float = 15 * 60.0
    timeout: float = 20.0
    max_bytes: int = 10_000_000
    user_agent: str = "aggregator/0.1 (+https://example.org/aggregator)"


# The copy verdicts `[dedup] verdict` may name (aggregator/dedup/verdict.py).
VERDICTS = ("calibrated", "rules")


@dataclass(frozen=True, slots=True)
class DedupSettings:
    """`[dedup]`: how syndicated copies are found. docs/design.md explains each default."""

    window: float = 14 * 86400.0
    num_perm: int = 128
    seed: int = 1
    shingle_size: int = 5
    lead_words: int = 60
    # Words per shingle of the body signature: shorter shingles than the verdict's
    # survive a sub-editor's change every few words; three-word ones are shared by
    # unrelated figure tables (docs/design.md, "Why two signatures").
    signed_shingle_size: int = 4
    body_lsh_threshold: float = 0.2
    lead_lsh_threshold: float = 0.3
    min_containment: float = 0.7
    min_jaccard: float = 0.3
    min_shingles: int = 15
    figure_tolerance: float = 0.15
    max_name_mismatch: float = 0.34
    duplicate_jaccard: float = 0.9
    # "calibrated" (the default, fitted on real pages) or "rules" (min_containment,
    # min_jaccard, figure_tolerance and max_name_mismatch): see dedup/verdict.py.
    verdict: str = "calibrated"
    boilerplate_min_items: int = 3
    boilerplate_min_share: float = 0.2


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """`[daemon]`: how `aggregator run` schedules polls (workers lives on Settings)."""

    per_host: int = 2
    tick: float = 5.0
    shutdown_timeout: float = 30.0
    backoff_cap: float = 6 * 3600.0
    respect_server_hints: bool = True
    metrics_port: int | None = None
    # Processes that parse, prepare and sign (0: one per core; 1: all on the writer).
    processes: int = 0


@dataclass(frozen=True, slots=True)
class FeedCredentials:
    """What a feed's fetch sends but nothing may store, log or show (config.py builds it).

    Held in memory only: the feeds table, every log line and every output get the URL
    without them (aggregator.text.urls.redact_url). The password and the secret query
    values go to `origin` (scheme://host:port of the configured URL) and nowhere else,
    so a redirect to another host or to plain http does not take them along.
    """

    origin: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # (name, value) of the configured URL's secret query parameters, as written.
    query: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Why the password is unknown (its environment variable is unset): fetches are refused.
    missing: str | None = None

    def secrets(self) -> tuple[str, ...]:
        """The strings no text may contain. A user name alone is a token, so it counts."""
        values = [self.password or "", *(value for _name, value in self.query)]
        if not self.password and self.username:
            values.append(self.username)
        return tuple(v for v in values if v)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One `[[feeds]]` entry with the polling defaults already applied.

    `url` is the URL as stored and shown: no user:password@, secret query values as
    "***". What it takes to fetch it is in `credentials`.
    """

    name: str
    publisher: str
    url: str
    tags: tuple[str, ...] = ()
    polling: PollingSettings = field(default_factory=PollingSettings)
    # Publishers this feed is known to republish: a credit to one of them decides the parent.
    syndicates: tuple[str, ...] = ()
    credentials: FeedCredentials | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole validated configuration."""

    source: Path | None
    db_path: Path
    polling: PollingSettings
    feeds: tuple[FeedConfig, ...]
    workers: int = 8
    # How long a write waits for another process's write lock before giving up.
    busy_timeout: float = 10.0
    dedup: DedupSettings = field(default_factory=DedupSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)

    def feed(self, name: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.name == name), None)


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed as the store knows it: configuration plus what polling has learned."""

    id: int
    name: str
    publisher: str
    url: str
    config_url: str
    tags: tuple[str, ...]
    active: bool
    in_config: bool
    etag: str | None
    last_modified: str | None
    error_count: int
    last_error: str | None
    last_status: int | None
    last_polled_at: datetime | None
    next_check_at: datetime | None
    retry_after_until: datetime | None
    bozo_warning: str | None
    item_count: int = 0
    site_url: str | None = None
    body_hash: str | None = None


class FetchOutcome(enum.Enum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    GONE = "gone"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    TOO_LARGE = "too_large"
    REFUSED = "refused"

    @property
    def is_error(self) -> bool:
        return self not in (FetchOutcome.OK, FetchOutcome.NOT_MODIFIED)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    url: str
    etag: str | None
    last_modified: str | None
    polling: PollingSettings
    credentials: FeedCredentials | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one conditional GET produced. Errors are data here, never exceptions."""

    requested_url: str
    final_url: str
    outcome: FetchOutcome
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    # Target of the leading run of permanent (301/308) redirects, if any.
    permanent_url: str | None = None
    retry_after: float | None = None
    max_age: float | None = None
    error: str | None = None
    bytes_read: int = 0
    elapsed: float = 0.0


# Enough of a content hash to tell a feed's entries apart (feeds.entry_hashes); a
# collision only means an entry is digested on the writer, not in a worker process.
HASH_PREFIX = 16


@dataclass(frozen=True, slots=True)
class ParsedEntry(Shipped):
    key: str
    guid: str | None
    url: str | None
    canonical_url: str | None
    title: str
    author: str | None
    published: datetime
    # False when the feed gave no usable date and `published` is the first-seen time.
    published_from_feed: bool
    updated: datetime | None
    summary_html: str
    summary_text: str
    content_html: str
    content_text: str
    categories: tuple[str, ...]
    content_hash: str

    @property
    def body_text(self) -> str:
        """The fuller of the entry's two texts: feeds put the article in either."""
        if len(self.content_text) >= len(self.summary_text):
            return self.content_text
        return self.summary_text

    @property
    def html(self) -> str:
        """Both HTML fields, for the links an item makes."""
        return f"{self.summary_html}\n{self.content_html}"


@dataclass(frozen=True, slots=True)
class ParsedFeed(Shipped):
    title: str | None
    link: str | None
    version: str | None
    entries: tuple[ParsedEntry, ...]
    # Set when the feed was not well-formed but still yielded entries.
    warning: str | None = None
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class ItemText:
    """What linking needs of one stored item, whether it came from a poll or the store."""

    item_id: int
    title: str
    text: str
    canonical_url: str | None
    published: datetime
    first_seen: datetime
    # The entry's HTML, for the links it makes to other publishers' sites.
    html: str = ""


class ChangeStatus(enum.Enum):
    NEW = "new"
    CHANGED = "changed"
    SAME = "same"


@dataclass(frozen=True, slots=True)
class EntryChange:
    """What storing one parsed entry did; the linker works from these."""

    item_id: int
    entry: ParsedEntry
    status: ChangeStatus
    first_seen: datetime
    # The stored publish time when it differs from the entry's (undated entries).
    published: datetime | None = None

    @property
    def stored_published(self) -> datetime:
        return self.published or self.entry.published


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """The decided new state of a feed after one poll; the store applies it verbatim."""

    url: str
    active: bool
    etag: str | None
    last_modified: str | None
    error_count: int
    last_error: str | None
    last_status: int | None
    next_check_at: datetime
    retry_after_until: datetime | None
    bozo_warning: str | None
    site_url: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class PollReport:
    """One line of `aggregator poll` output, also stored as a row of `fetches`."""

    feed: str
    started_at: datetime
    outcome: FetchOutcome
    status: int | None
    bytes_read: int
    items_seen: int
    items_new: int
    items_updated: int
    duration: float
    error: str | None
    warning: str | None
    url: str
    # New items linked to an existing story (syndicated, version, duplicate).
    links: int = 0
    # Time spent preparing, signing and linking items (the dedup stage).
    dedup_seconds: float = 0.0
    # New items by relation ("original", "syndicated", ...), for metrics.
    relations: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as listed back out of the store."""

    id: int
    feed: str
    publisher: str
    entry_key: str
    url: str | None
    title: str
    author: str | None
    published: datetime
    first_seen: datetime
    updated_at: datetime
    revisions: int
    summary_text: str
    categories: tuple[str, ...]
    story_id: int
    parent_id: int | None
    relation: str
    similarity: float | None
    containment: float | None
    lag_seconds: int | None
    method: str | None
    # Items in this item's story, itself included (1 for a story of one).
    story_size: int = 1
    tickers: tuple[str, ...] = ()
    canonical_url: str | None = None
    # The verdict's score for this item and its parent (None for an original).
    score: float | None = None
    # The change number of the last write to this item (export cursors compare it).
    change_seq: int = 0


@dataclass(frozen=True, slots=True)
class StorySummary:
    original: StoredItem
    size: int
    publishers: tuple[str, ...]
    last_published: datetime


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """The daemon's last recorded state and the store's health, for `aggregator status`."""

    pid: int | None
    host: str | None
    version: str | None
    started_at: datetime | None
    last_tick_at: datetime | None
    stopped_at: datetime | None
    feeds: int
    feeds_due: int
    feeds_in_backoff: tuple[Feed, ...]
    items_last_hour: int
    items_last_day: int
    items_total: int


class Relation(enum.StrEnum):
    ORIGINAL = "original"  # the root of its story (also a story of one)
    DUPLICATE = "duplicate"  # same publisher, same text, another URL
    SYNDICATED = "syndicated"  # another publisher's copy
    VERSION = "version"  # an updated take or correction of the same story
    CITES = "cites"  # names the source; not a copy


# A passage where a template puts its figures and names: (hash of the words with
# figures and names masked, hash with only figures masked, the figures in order).
Slot = tuple[int, int, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class PreparedText:
    """An item's body as the near-duplicate check sees it."""

    lines: tuple[str, ...]
    line_keys: tuple[str, ...]
    words: tuple[str, ...]
    shingles: frozenset[str]
    lead_shingles: tuple[str, ...]
    # What a templated report changes from one issue to the next.
    figures: frozenset[str]
    names: frozenset[str]
    # The same with figures replaced by "#": what two issues of a template share.
    skeleton_shingles: frozenset[str]
    skeleton_lines: frozenset[str]
    # Per paragraph: (skeleton, its shingles), figures, names, opening subject.
    line_skeletons: tuple[tuple[str, frozenset[str]], ...]
    line_figures: tuple[frozenset[str], ...]
    line_names: tuple[frozenset[str], ...]
    line_subjects: tuple[frozenset[str], ...]
    # The shapes of its prose paragraphs (docs/design.md, "The verdict"), as hashed
    # shingles of words inside one prose paragraph; prose is all kept paragraphs
    # when too few look like prose. Chrome lines (bylines, stamps, widgets,
    # navigation) are short, or mostly figures or capitalised words.
    # Three-word shingles: they survive a sub-editor's change every few words.
    prose_short: frozenset[int] = frozenset()
    # Shingles with no word inside double quotes: two desks quoting one statement
    # share its words and nothing else.
    prose_unquoted: frozenset[int] = frozenset()
    # Each prose shingle with a figure or a name in it, as a Slot.
    prose_slots: frozenset[Slot] = frozenset()


@dataclass(frozen=True, slots=True)
class SigningView:
    """What an item's signatures are made from: PreparedText's first fields."""

    lines: tuple[str, ...]
    # Keys of all the body's paragraphs, boilerplate ones included.
    paragraph_keys: frozenset[str]
    # How many distinct shingles PreparedText has (identical bodies need no more).
    shingle_count: int
    # What the body signature is made of: signed_shingle_size shingles, encoded.
    signed: frozenset[bytes]
    # PreparedText's lead shingles, encoded as UTF-8 for hashing.
    lead_shingles: tuple[bytes, ...]
    # Distinct figures in the kept paragraphs (PreparedText.figures, counted).
    figure_count: int


@dataclass(frozen=True, slots=True)
class Comparison:
    jaccard: float
    containment: float
    shared: int
    # Figures of the shorter text missing from the longer one, and how many it has.
    figures_missing: int
    figures: int
    # Share of the shorter text's proper names that the longer one lacks.
    name_mismatch: float
    # Names from the shorter text's opening sentence that the longer one lacks.
    subject_missing: int
    # The shorter text's shared part starts near the top of the longer one.
    aligned: bool
    # Measured on prose paragraphs only, each as a share of the smaller set:
    # three-word shingles, unquoted five-word shingles.
    short_containment: float = 0.0
    unquoted_containment: float = 0.0
    # Of the passages with a figure or a name that the two share once those are
    # masked, the share written with other figures or names: a template changes
    # them, a copy does not. Smoothed: changed / (shared + SUBSTITUTION_PRIOR).
    substitution: float = 0.0


@dataclass(frozen=True, slots=True)
class Member:
    """What the syndication decider needs to know about one item."""

    id: int
    feed_id: int
    publisher: str
    published: datetime
    first_seen: datetime
    title: str
    credits: frozenset[str]
    story_id: int | None = None
    parent_id: int | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """An item's place in its story, as stored on the item."""

    item_id: int
    story_id: int
    parent_id: int | None
    relation: Relation
    similarity: float | None
    containment: float | None
    lag_seconds: int | None
    method: str | None
    # The verdict's score for this item and its parent (None where none was weighed).
    score: float | None = None
