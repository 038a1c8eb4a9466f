"""Exports for cron: JSONL, CSV, Atom and RSS files, incremental by cursor, written atomically.

A cursor remembers the last change number it exported. A run exports items
written (stored, updated or re-linked) after it and up to the change number
read when the run started, writes the file to a temporary name in the target
directory, fsyncs it, and then, in one database transaction, checks that the
cursor is still where the run read it, moves the file into place and advances
the cursor. A run killed before that leaves the cursor where it was, so the
next run writes the same items again: nothing is skipped, nothing repeated
after a successful run.

Two runs of one cursor never overlap: a run holds a lock on its cursor (a file
next to the database) from reading it to moving it, and one that finds the lock
taken fails at once, writing nothing (cron's next run exports what it would
have). The compare-and-set on the cursor catches a writer that takes no lock
(an older aggregator), so the cursor never moves backwards.

An incremental export never replaces a file: the file is the only delivery of
its items. When the name is taken (news-%Y%m%d-%H%M.jsonl run twice in a
minute) it gets -1, -2, ... before the extension. A full export (no cursor) is
a snapshot of everything that matches, so it replaces the last one in place and
a published feed keeps its address.

Files are created like any other program creates them: 0666 less the umask.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import secrets
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from aggregator import __version__
from aggregator.errors import AggregatorError, UsageError
from aggregator.models import StoredItem
from aggregator.store import ItemFilter, Store, format_time

FORMATS = ("jsonl", "csv", "atom", "rss")
# Test seam: seconds to wait between the durable write and the rename, so a test can
# kill the export there and check that the cursor did not move.
PAUSE_BEFORE_RENAME = "AGGREGATOR_EXPORT_PAUSE_BEFORE_RENAME"

ITEM_FIELDS = (
    "id",
    "story_id",
    "parent_id",
    "relation",
    "similarity",
    "containment",
    "score",
    "lag_seconds",
    "method",
    "publisher",
    "feed",
    "title",
    "url",
    "author",
    "published",
    "first_seen",
    "updated_at",
    "revisions",
    "tickers",
    "categories",
    "summary",
)


@dataclass(frozen=True, slots=True)
class ExportResult:
    items: int
    stories: int
    path: str | None  # None: nothing to write; "-": standard output


def item_record(item: StoredItem) -> dict[str, object]:
    return {
        "id": item.id,
        "story_id": item.story_id,
        "parent_id": item.parent_id,
        "relation": item.relation,
        "similarity": item.similarity,
        "containment": item.containment,
        "score": item.score,
        "lag_seconds": item.lag_seconds,
        "method": item.method,
        "publisher": item.publisher,
        "feed": item.feed,
        "title": item.title,
        "url": item.url,
        "author": item.author,
        "published": format_time(item.published),
        "first_seen": format_time(item.first_seen),
        "updated_at": format_time(item.updated_at),
        "revisions": item.revisions,
        "tickers": list(item.tickers),
        "categories": list(item.categories),
        "summary": item.summary_text,
    }


def _stories(items: Sequence[StoredItem]) -> list[list[StoredItem]]:
    """Group items by story, the original first, stories in order of first appearance."""
    groups: dict[int, list[StoredItem]] = {}
    for item in items:
        groups.setdefault(item.story_id, []).append(item)
    ordered = []
    for members in groups.values():
        members.sort(key=lambda i: (i.id != i.story_id, i.published, i.id))
        ordered.append(members)
    return ordered


def story_record(members: Sequence[StoredItem]) -> dict[str, object]:
    original = members[0]
    record = item_record(original)
    record["copies"] = [item_record(m) for m in members[1:]]
    record["publishers"] = sorted({m.publisher for m in members})
    return record


def render(fmt: str, items: Sequence[StoredItem], *, collapse: bool, now: datetime) -> str:
    if fmt in ("atom", "rss"):
        stories = _stories(items)
        return _atom(stories, now) if fmt == "atom" else _rss(stories, now)
    records: Iterable[dict[str, object]] = (
        (story_record(s) for s in _stories(items)) if collapse else (item_record(i) for i in items)
    )
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return _csv(list(records), collapse=collapse)


def _csv(records: list[dict[str, object]], *, collapse: bool) -> str:
    """Lists become ;-separated cells; a story's copies become their ids."""
    fields = [*ITEM_FIELDS, *(("copies", "publishers") if collapse else ())]
    rows = []
    for record in records:
        row = dict(record)
        for key, value in record.items():
            if isinstance(value, list):
                row[key] = ";".join(str(v["id"]) if isinstance(v, dict) else str(v) for v in value)
        rows.append(row)
    return csv_document(fields, rows)


# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection"); a tab or
# carriage return first is how the same formula slips past a filter that checks only "=".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, with a ' in front so it shows as text.

    Headlines and bodies come from feeds anyone can publish, so `=HYPERLINK(...)` in a title
    is an attack on whoever opens the export in a spreadsheet. Only text is touched: a
    number (a negative lag, a search rank) is data, and a spreadsheet reads it as a number.
    A carriage return inside a cell becomes a line feed: the csv module quotes a cell only
    for the characters of its line terminator ("\n" here), so a bare CR went out unquoted,
    a spreadsheet started a new row there, and the text after it was a cell of its own.
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if value.startswith(FORMULA_STARTS) else text


def csv_document(fields: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """CSV with a header row, every cell through csv_cell: `export --format csv` and the
    listings' --csv both write through here, so neither can forget it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([csv_cell(row.get(field)) for field in fields])
    return buffer.getvalue()


def _story_summary(members: Sequence[StoredItem]) -> str:
    original = members[0]
    lines = [f"<p>{escape(original.summary_text[:600])}</p>"] if original.summary_text else []
    if len(members) > 1:
        lines.append("<p>Also carried by:</p><ul>")
        for copy in members[1:]:
            link = escape(copy.url or "")
            lines.append(
                f'<li><a href="{link}">{escape(copy.publisher)}</a> '
                f"({escape(copy.relation)}, {format_time(copy.published)})</li>"
            )
        lines.append("</ul>")
    return "".join(lines)


def _atom(stories: list[list[StoredItem]], now: datetime) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<title>aggregator: stories</title>",
        "<id>urn:aggregator:stories</id>",
        f"<updated>{format_time(now)}</updated>",
        f'<generator version="{__version__}">aggregator</generator>',
    ]
    for members in stories:
        original = members[0]
        out += [
            "<entry>",
            f"<id>urn:aggregator:story:{original.story_id}</id>",
            f"<title>{escape(original.title or '(no title)')}</title>",
            f"<updated>{format_time(max(m.updated_at for m in members))}</updated>",
            f"<published>{format_time(original.published)}</published>",
            f"<author><name>{escape(original.publisher)}</name></author>",
        ]
        if original.url:
            out.append(f'<link rel="alternate" href={quoteattr(original.url)}/>')
        for copy in members[1:]:
            if copy.url:
                out.append(
                    f'<link rel="related" href={quoteattr(copy.url)} '
                    f"title={quoteattr(copy.publisher)}/>"
                )
        out += [f"<category term={quoteattr(t)}/>" for t in original.tickers]
        out.append(f'<summary type="html">{escape(_story_summary(members))}</summary>')
        out.append("</entry>")
    out.append("</feed>")
    return "\n".join(out) + "\n"


def _rss(stories: list[list[StoredItem]], now: datetime) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        "<title>aggregator: stories</title>",
        "<link>urn:aggregator:stories</link>",
        "<description>Stories and their syndicated copies</description>",
        f"<lastBuildDate>{format_datetime(now, usegmt=True)}</lastBuildDate>",
        f"<generator>aggregator {__version__}</generator>",
    ]
    for members in stories:
        original = members[0]
        out += [
            "<item>",
            f"<title>{escape(original.title or '(no title)')}</title>",
            f'<guid isPermaLink="false">urn:aggregator:story:{original.story_id}</guid>',
            f"<pubDate>{format_datetime(original.published, usegmt=True)}</pubDate>",
            f"<source url={quoteattr(original.url or 'urn:aggregator')}>"
            f"{escape(original.publisher)}</source>",
        ]
        if original.url:
            out.append(f"<link>{escape(original.url)}</link>")
        for copy in members[1:]:
            if copy.url:
                out.append(f'<atom:link rel="related" href={quoteattr(copy.url)}/>')
        out += [f"<category>{escape(t)}</category>" for t in original.tickers]
        out.append(f"<description>{escape(_story_summary(members))}</description>")
        out.append("</item>")
    out += ["</channel>", "</rss>"]
    return "\n".join(out) + "\n"


class CursorBusyError(AggregatorError):
    """Another run is exporting with the same cursor; this one wrote nothing."""


def output_path(template: str, now: datetime) -> Path:
    """PATH with strftime fields (news-%Y%m%d-%H%M.jsonl) filled from `now` (UTC)."""
    try:
        return Path(now.strftime(template))
    except ValueError as e:
        raise UsageError(f"--output {template!r}: {e}") from e


# How many numbered names (news-1.jsonl ...) an incremental export tries before giving up.
MAX_NUMBERED = 1000


def numbered(path: Path, n: int) -> Path:
    """The n-th name to try for a new file: news.jsonl, news-1.jsonl, news-2.jsonl, ..."""
    return path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")


def _cannot_write(path: Path, e: OSError) -> AggregatorError:
    return AggregatorError(f"cannot write {path}: {e.strerror or e}")


def _directory(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _write_temporary(path: Path, content: str) -> Path:
    """The content, fsynced, under a hidden name beside `path`; the caller moves or removes it.

    os.open with 0666 rather than tempfile, whose files are 0600 whatever the umask: the
    kernel takes the umask off, so an exported feed is as readable as any file the user
    writes (0644 under umask 022, which a web server can serve) and private under 077.
    """
    directory = _directory(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            temporary = directory / f".{path.name}.{secrets.token_hex(4)}"
            try:
                descriptor = os.open(temporary, flags, 0o666)
            except FileExistsError:
                continue
            break
    except OSError as e:
        raise _cannot_write(path, e) from e
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise _cannot_write(path, e) from e
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _pause_before_rename() -> None:
    pause = os.environ.get(PAUSE_BEFORE_RENAME)
    if pause:
        time.sleep(float(pause))


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _discard(path: Path) -> None:
    with suppress(OSError):
        path.unlink(missing_ok=True)


def write_atomically(path: Path, content: str) -> None:
    """Temp file in the same directory, fsync, rename over `path`, fsync the directory."""
    temporary = _write_temporary(path, content)
    try:
        _pause_before_rename()
        os.replace(temporary, path)
        _sync_directory(_directory(path))
    except OSError as e:
        raise _cannot_write(path, e) from e
    finally:
        _discard(temporary)


def _link_new(temporary: Path, target: Path) -> Path:
    """Give the temporary file the first free name of target, target-1, ...; never replace one.

    link() fails when the name exists, atomically, so two runs taking a name at once
    cannot both get it, where rename() would silently replace the other's file. On a file
    system without hard links, an empty file made with O_EXCL claims the name and the
    rename fills it.
    """
    for n in range(MAX_NUMBERED):
        candidate = numbered(target, n)
        try:
            os.link(temporary, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        try:
            os.replace(temporary, candidate)
        except BaseException:
            _discard(candidate)
            raise
        return candidate
    raise AggregatorError(
        f"cannot write {target}: it and {numbered(target, 1).name} .. "
        f"{numbered(target, MAX_NUMBERED - 1).name} all exist"
    )


def cursor_lock_path(db_path: Path, name: str) -> Path:
    """`<db>.cursor-<hash>.lock`: hashed, because a cursor name is free text, not a file name."""
    db = db_path.resolve()
    return db.with_name(f"{db.name}.cursor-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock")


@contextmanager
def cursor_lock(db_path: Path, name: str) -> Iterator[None]:
    """Hold cursor `name` for one run, or fail at once when another run holds it.

    flock, like the poller's lock: the kernel drops it when the holder dies, even by
    SIGKILL, so a killed export never blocks the next. Failing rather than waiting: what
    the losing run would have written is the winner's or the next run's, and overlapping
    cron runs never pile up behind a stuck one.
    """
    path = cursor_lock_path(db_path, name)
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        raise AggregatorError(f"cannot lock cursor {name!r} ({path}): {e.strerror or e}") from e
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            raise CursorBusyError(
                f"cursor {name!r} is being exported by {holder}; this run wrote nothing "
                "(run it again when that one has finished)"
            ) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        handle.write(f"pid {os.getpid()} since {since}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
        # Closing the file releases the lock.


@contextmanager
def _moving_cursor(
    store: Store, name: str, start: int, seq: int, exported: int, now: datetime, *, lost: str
) -> Iterator[None]:
    """One transaction: check the cursor is still at `start`, run the body, move it to `seq`.

    Under the cursor lock the check always holds; it is there for a writer that takes no
    lock (an aggregator from before the lock), so the cursor can never move backwards or
    past items this run did not write.
    """
    with store.transaction():
        current = store.cursor_seq(name)
        if current != start:
            raise CursorBusyError(
                f"cursor {name!r} moved from {start} to {current} during this run (another "
                f"export of it that takes no cursor lock?); left it there, {lost}"
            )
        yield
        store.set_cursor(name, seq, exported, now)


def run_export(
    store: Store,
    *,
    fmt: str,
    output: str,
    cursor: str | None,
    collapse: bool,
    filters: ItemFilter,
    now: datetime,
) -> ExportResult:
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if cursor is None:
        return _export(store, fmt, output, None, collapse, filters, now)
    with cursor_lock(store.path, cursor):
        return _export(store, fmt, output, cursor, collapse, filters, now)


def _export(
    store: Store,
    fmt: str,
    output: str,
    cursor: str | None,
    collapse: bool,
    filters: ItemFilter,
    now: datetime,
) -> ExportResult:
    high_water = store.change_high_water()
    start = 0
    if cursor is not None:
        start = store.cursor_seq(cursor)
        changed = store.changed_items(start, high_water, filters)
        if collapse or fmt in ("atom", "rss"):
            # A changed copy re-exports its whole story, so the record is complete.
            items = store.story_items(sorted({i.story_id for i in changed}))
        else:
            items = changed
    else:
        items = store.filtered_items(filters, None)
        if collapse or fmt in ("atom", "rss"):
            items = store.story_items(sorted({i.story_id for i in items}))
    stories = len({i.story_id for i in items})
    if not items:
        return ExportResult(0, 0, None)
    content = render(fmt, items, collapse=collapse, now=now)
    if output == "-":
        sys.stdout.write(content)
        sys.stdout.flush()
        if cursor is not None:
            # Already down the pipe: a lost race (see _moving_cursor) can only be reported.
            with _moving_cursor(
                store, cursor, start, high_water, len(items), now, lost="but stdout has the items"
            ):
                pass  # nothing to put in place
        return ExportResult(len(items), stories, "-")
    target = output_path(output, now)
    if cursor is None:
        # A snapshot of everything that matches: replacing the last one loses nothing.
        write_atomically(target, content)
        return ExportResult(len(items), stories, str(target))
    temporary = _write_temporary(target, content)
    placed: Path | None = None
    try:
        _pause_before_rename()
        with _moving_cursor(
            store, cursor, start, high_water, len(items), now, lost="wrote nothing"
        ):
            try:
                placed = _link_new(temporary, target)
                # The name is durable before the cursor moves past its items.
                _sync_directory(_directory(target))
            except OSError as e:
                raise _cannot_write(target, e) from e
    except BaseException:
        # The cursor did not move (the transaction rolled back): neither may the file be.
        if placed is not None:
            _discard(placed)
        raise
    finally:
        _discard(temporary)
    return ExportResult(len(items), stories, str(placed))
