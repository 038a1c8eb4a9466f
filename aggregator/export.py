"""Exports for cron: JSONL, CSV, Atom and RSS files, incremental by cursor, written atomically.

A cursor remembers the last change number it exported. A run exports items
written (stored, updated or re-linked) after it and up to the change number
read when the run started, writes the file to a temporary name in the target
directory, fsyncs it, renames it into place, and only then advances the
cursor. A run killed before the rename leaves the cursor where it was, so the
next run writes the same items again: nothing is skipped, nothing repeated
after a successful run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
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
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = dict(record)
        for key, value in record.items():
            if isinstance(value, list):
                row[key] = ";".join(str(v["id"]) if isinstance(v, dict) else str(v) for v in value)
        writer.writerow(row)
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


def output_path(template: str, now: datetime) -> Path:
    """PATH with strftime fields (news-%Y%m%d-%H%M.jsonl) filled from `now` (UTC)."""
    try:
        return Path(now.strftime(template))
    except ValueError as e:
        raise UsageError(f"--output {template!r}: {e}") from e


def write_atomically(path: Path, content: str) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, before the rename
            "w", encoding="utf-8", dir=directory, prefix=f".{path.name}.", delete=False
        )
    except OSError as e:
        raise AggregatorError(f"cannot write {path}: {e.strerror or e}") from e
    temporary = Path(handle.name)
    try:
        with handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        pause = os.environ.get(PAUSE_BEFORE_RENAME)
        if pause:
            time.sleep(float(pause))
        os.replace(temporary, path)
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise AggregatorError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


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
    high_water = store.change_high_water()
    if cursor is not None:
        changed = store.changed_items(store.cursor_seq(cursor), high_water, filters)
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
        written = "-"
    else:
        target = output_path(output, now)
        write_atomically(target, content)
        written = str(target)
    if cursor is not None:
        store.advance_cursor(cursor, high_water, len(items), now)
    return ExportResult(len(items), stories, written)
