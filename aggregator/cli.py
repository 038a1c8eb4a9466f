"""The `aggregator` command: a thin click shell over the pipeline and the store.

Errors the aggregator raises on purpose become one line on stderr and the
error's exit code; nothing prints a traceback unless AGGREGATOR_DEBUG is set.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from aggregator import __version__
from aggregator.config import (
    ENV_VAR,
    config_path,
    load_settings,
    parse_duration,
    settings_from_mapping,
)
from aggregator.errors import AggregatorError, StorageError, UsageError
from aggregator.lock import DatabaseLock
from aggregator.lock import holder as lock_holder
from aggregator.logs import configure as configure_logging
from aggregator.models import Feed, FeedConfig, PollReport, Settings, StoredItem, StoreStatus
from aggregator.store import DEFAULT_BUSY_TIMEOUT, ItemFilter, Store, format_time

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns deliberate errors into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AggregatorError as e:
            if os.environ.get("AGGREGATOR_DEBUG"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            if os.environ.get("AGGREGATOR_DEBUG"):
                raise
            text = " ".join(str(e).split()) or type(e).__name__
            click.echo(
                f"internal error: {type(e).__name__}: {text} "
                "(set AGGREGATOR_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(1)


@dataclass
class _State:
    config: str | None
    db: str | None
    _settings: Settings | None = field(default=None)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def has_config(self) -> bool:
        """A config file is named (--config, $AGGREGATOR_CONFIG) or ./config.toml is there."""
        return self.config is not None or config_path(None).exists()

    def settings_or_defaults(self) -> Settings:
        """The config's settings; with --db and no config file to read, the defaults.

        For a writer that needs no feed list (import): --db alone then does, as it does
        for the readers. A config that is named must still exist.
        """
        if self._settings is None and self.db and not self.has_config():
            defaults = settings_from_mapping({}, source=None, base_dir=Path.cwd())
            self._settings = replace(defaults, db_path=Path(self.db))
        return self.settings()

    def db_path(self) -> Path:
        return Path(self.db) if self.db else self.settings().db_path

    def existing_db(self) -> Path:
        """The database a reading command reads; an error, having created nothing, if absent.

        Opening a store creates the file (and its folder), which a writer wants; for a
        reader a mistyped path would leave an empty store behind and answer "no items".
        """
        path = self.db_path()
        if not _exists(path):
            raise StorageError(
                f"no database at {path}: the file does not exist "
                "(`aggregator poll` or `aggregator import` creates it)"
            )
        return path

    def open_store(self) -> Store:
        """--db wins over [storage] path; without --db the config file is required."""
        if self.db:
            busy = self._settings.busy_timeout if self._settings else DEFAULT_BUSY_TIMEOUT
            return Store.open(Path(self.db), busy_timeout=busy)
        settings = self.settings()
        return Store.open(settings.db_path, busy_timeout=settings.busy_timeout)

    def open_reader(self) -> Store:
        """The store of a reading command: refused, not created, when the file is absent."""
        self.existing_db()
        return self.open_store()


def _exists(path: Path) -> bool:
    """False only when the file is certainly absent; other troubles are Store.open's to say."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _output_options(func: F) -> F:
    """--json / --jsonl / --csv, shared by every listing command; a table otherwise."""
    for flag, text in (
        (
            "--csv",
            "Print CSV with a header row. A text cell starting with = + - @, a tab or a CR "
            "gets a leading ' so a spreadsheet shows it instead of running it as a formula.",
        ),
        ("--jsonl", "Print one JSON object per line."),
        ("--json", "Print a JSON array."),
    ):
        func = click.option(flag, "output", flag_value=flag.lstrip("-"), help=text)(func)
    return func


def _emit(output: str | None, records: list[dict[str, object]], table: Callable[[], str]) -> None:
    if output == "json":
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    elif output == "jsonl":
        for record in records:
            click.echo(json.dumps(record, ensure_ascii=False))
    elif output == "csv":
        if not records:
            return
        # The export's writer, so a listing's cells are neutralised as an export's are.
        from aggregator.export import csv_document

        rows = [
            {k: ";".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in r.items()}
            for r in records
        ]
        click.echo(csv_document(list(records[0]), rows), nl=False)
    else:
        click.echo(table())


def _json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _since(value: str | None, now: datetime) -> datetime | None:
    """'24h', '7d', '90m' back from now, or an ISO 8601 date or time (UTC if no zone)."""
    if value is None:
        return None
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise UsageError(
            f"--since {value!r}: expected a duration like 24h or 7d, or an ISO date/time"
        ) from e
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar=ENV_VAR,
    show_envvar=True,
    help="Configuration file [default: ./config.toml].",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="SQLite database to use instead of [storage] path from the config.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log messages at this level and above go to stderr "
    "[default: info for run, warning for the rest].",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object per line for log collectors.",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, db: str | None, log_level: str | None, log_format: str
) -> None:
    """Poll financial-news feeds, store every item in SQLite and link syndicated copies.

    Configuration comes from --config, else $AGGREGATOR_CONFIG, else ./config.toml.
    """
    default_level = "info" if ctx.invoked_subcommand == "run" else "warning"
    configure_logging(log_level or default_level, log_format)
    ctx.obj = _State(config=config, db=db)


def _report_row(report: PollReport) -> list[object]:
    status = report.status if report.status is not None else "-"
    detail = report.error or report.warning or ""
    return [
        report.feed,
        report.outcome.value,
        status,
        report.items_new,
        report.items_updated,
        report.links,
        f"{report.duration:.2f}s",
        _shorten(detail, 80),
    ]


def _report_json(report: PollReport) -> dict[str, object]:
    return {
        "feed": report.feed,
        "started_at": _iso(report.started_at),
        "outcome": report.outcome.value,
        "status": report.status,
        "bytes": report.bytes_read,
        "items_seen": report.items_seen,
        "items_new": report.items_new,
        "items_updated": report.items_updated,
        "links": report.links,
        "duration": round(report.duration, 3),
        "dedup_seconds": round(report.dedup_seconds, 4),
        "error": report.error,
        "warning": report.warning,
        "url": report.url,
    }


_REPORT_HEADERS = ("FEED", "OUTCOME", "STATUS", "NEW", "UPDATED", "LINKED", "TIME", "DETAIL")


@cli.command()
@click.option(
    "--feed", "names", multiple=True, metavar="NAME", help="Poll this feed now (repeatable)."
)
@click.option("--all", "everything", is_flag=True, help="Poll every active feed, due or not.")
@_json_option
@click.pass_obj
def poll(state: _State, names: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Poll due feeds once and store what they carry.

    Prints one line per feed polled. A feed that fails (unreachable, HTTP
    error, malformed) is recorded on the feed and does not change the exit
    status; `aggregator feeds` shows it.
    """
    # Imported here: the fetch/dedup stack (httpx, datasketch, numpy) is slow to load and
    # reading commands do not need it.
    from aggregator.pipeline import poll as run_poll

    settings = state.settings()
    with DatabaseLock(state.db_path(), role="poll"), state.open_store() as store:
        reports = []
        for report in run_poll(store, settings, names=names, everything=everything):
            reports.append(report)
            if as_json:
                click.echo(json.dumps(_report_json(report)))
        if as_json:
            return
        if not reports:
            click.echo("no feeds due (use --all or --feed NAME to poll anyway)")
            return
        click.echo(_table(_REPORT_HEADERS, [_report_row(r) for r in reports]))
        new = sum(r.items_new for r in reports)
        updated = sum(r.items_updated for r in reports)
        linked = sum(r.links for r in reports)
        failed = sum(1 for r in reports if r.error)
        click.echo(
            f"{len(reports)} feeds polled: {new} new items ({linked} linked to a story), "
            f"{updated} updated, {failed} failed"
        )


def _feed_status(feed: Feed) -> str:
    if not feed.active:
        return "gone"
    if feed.last_polled_at is None:
        return "never polled"
    return "error" if feed.error_count else "ok"


def _unpolled_feed(config: FeedConfig) -> Feed:
    """A configured feed as the store will first know it: never polled, no items."""
    return Feed(
        id=0,
        name=config.name,
        publisher=config.publisher,
        url=config.url,
        config_url=config.url,
        tags=config.tags,
        active=True,
        in_config=True,
        etag=None,
        last_modified=None,
        error_count=0,
        last_error=None,
        last_status=None,
        last_polled_at=None,
        next_check_at=None,
        retry_after_until=None,
        bozo_warning=None,
    )


def _feed_json(feed: Feed) -> dict[str, object]:
    return {
        "name": feed.name,
        "publisher": feed.publisher,
        "url": feed.url,
        "config_url": feed.config_url,
        "tags": list(feed.tags),
        "status": _feed_status(feed),
        "active": feed.active,
        "last_polled_at": _iso(feed.last_polled_at),
        "last_status": feed.last_status,
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "warning": feed.bozo_warning,
        "next_check_at": _iso(feed.next_check_at),
        "items": feed.item_count,
    }


@cli.group(invoke_without_command=True)
@_output_options
@click.pass_context
def feeds(ctx: click.Context, output: str | None) -> None:
    """List configured feeds with their polling status and item counts.

    `feeds import FILE.opml` adds an OPML subscription list to config.toml;
    `feeds export` writes the configured feeds as OPML 2.0.
    """
    if ctx.invoked_subcommand is not None:
        return
    state: _State = ctx.obj
    settings = state.settings()
    path = state.db_path()
    if _exists(path):
        with state.open_store() as store:
            store.sync_feeds(settings.feeds, utc_now())
            rows = store.feeds(with_counts=True)
    else:
        # Still an answer (a new config is checked this way before its first poll), but
        # from the config alone: a reader creates no database.
        click.echo(
            f"no database at {path}: the file does not exist, so no feed has been polled "
            "(`aggregator poll` creates it)",
            err=True,
        )
        rows = [_unpolled_feed(config) for config in settings.feeds]

    def table() -> str:
        if not rows:
            return "no feeds configured"
        return _table(
            ("NAME", "PUBLISHER", "STATUS", "LAST POLL", "HTTP", "ERRORS", "ITEMS", "LAST ERROR"),
            [
                [
                    f.name,
                    f.publisher,
                    _feed_status(f),
                    _iso(f.last_polled_at) or "-",
                    f.last_status if f.last_status is not None else "-",
                    f.error_count,
                    f.item_count,
                    _shorten(f.last_error or "", 60),
                ]
                for f in rows
            ],
        )

    _emit(output, [_feed_json(f) for f in rows], table)


@feeds.command("import")
@click.argument("opml_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@click.pass_obj
def feeds_import(state: _State, opml_file: Path, dry_run: bool) -> None:
    """Add the feeds of an OPML file (any feed reader's export) to config.toml.

    Feeds whose URL is already configured are skipped; names are made unique.
    The config file keeps its text and comments; new [[feeds]] tables are
    appended. A running daemon picks them up on SIGHUP.
    """
    from aggregator.opml import append_feeds_to_config, read_opml

    settings = state.settings()
    config = config_path(state.config)
    document = read_opml(opml_file.read_bytes(), source=str(opml_file))
    for skipped in document.skipped:
        click.echo(f"skipped {skipped}", err=True)
    text = config.read_text(encoding="utf-8")
    new_text, added, duplicates = append_feeds_to_config(
        text,
        document.feeds,
        {f.name for f in settings.feeds},
        {f.url for f in settings.feeds},
    )
    for feed in added:
        click.echo(f"+ {feed.name}  {feed.publisher}  {feed.url}")
    if duplicates:
        click.echo(f"{len(duplicates)} feeds already configured, skipped", err=True)
    if dry_run or not added:
        click.echo(f"{len(added)} feeds {'would be ' if dry_run else ''}added to {config}")
        return
    # Checked before writing: the file must still load after the import.
    temporary = config.with_name(f".{config.name}.import")
    temporary.unlink(missing_ok=True)
    # Private until it has the config's own mode: the config may hold a feed's password,
    # and a file made under the umask (0644) would hand it to every local user.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "w", encoding="utf-8") as handle:
        handle.write(new_text)
    try:
        os.chmod(temporary, stat.S_IMODE(config.stat().st_mode))
        load_settings(temporary)
        os.replace(temporary, config)
    finally:
        temporary.unlink(missing_ok=True)
    click.echo(f"{len(added)} feeds added to {config}")


@feeds.command("export")
@click.option(
    "--output",
    default="-",
    show_default=True,
    metavar="PATH",
    help="Where to write the OPML document; - for standard output.",
)
@click.pass_obj
def feeds_export(state: _State, output: str) -> None:
    """Write the configured feeds as an OPML 2.0 subscription list."""
    from aggregator.opml import OpmlFeed, render_opml

    settings = state.settings()
    sites: dict[str, str | None] = {}
    if state.db_path().exists():
        with state.open_store() as store:
            sites = {f.name: f.site_url for f in store.feeds(in_config_only=False)}
    document = render_opml(
        [OpmlFeed(f.name, f.publisher, f.url, f.tags, sites.get(f.name)) for f in settings.feeds],
        title="aggregator feeds",
        now=utc_now(),
    )
    if output == "-":
        sys.stdout.buffer.write(document)
    else:
        Path(output).write_bytes(document)
        click.echo(f"{len(settings.feeds)} feeds written to {output}", err=True)


def _item_json(item: StoredItem) -> dict[str, object]:
    return {
        "id": item.id,
        "feed": item.feed,
        "publisher": item.publisher,
        "title": item.title,
        "url": item.url,
        "author": item.author,
        "published": _iso(item.published),
        "first_seen": _iso(item.first_seen),
        "updated_at": _iso(item.updated_at),
        "revisions": item.revisions,
        "categories": list(item.categories),
        "tickers": list(item.tickers),
        "story_id": item.story_id,
        "parent_id": item.parent_id,
        "relation": item.relation,
        "similarity": item.similarity,
        "containment": item.containment,
        "score": item.score,
        "lag_seconds": item.lag_seconds,
        "method": item.method,
        "story_size": item.story_size,
        "summary": item.summary_text,
    }


def _lag(seconds: int | None) -> str:
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    if minutes < 60:
        return f"{sign}{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{hours // 24}d{hours % 24:02d}h"


_RELATIONS = ("original", "syndicated", "version", "duplicate")


def _filter_options(func: F) -> F:
    """The item filters shared by items, search and export."""
    options = [
        click.option(
            "--since", metavar="AGE|ISO", help="Published within this age (24h, 7d) or after."
        ),
        click.option("--until", metavar="AGE|ISO", help="Published before this age or time."),
        click.option(
            "--publisher", "publishers", multiple=True, metavar="P", help="Only this publisher."
        ),
        click.option("--feed", "names", multiple=True, metavar="NAME", help="Only this feed."),
        click.option("--tag", "tags", multiple=True, metavar="T", help="Only feeds with this tag."),
        click.option(
            "--ticker", "tickers", multiple=True, metavar="SYM", help="Items mentioning SYM."
        ),
        click.option(
            "--relation", type=click.Choice(_RELATIONS), help="Only items with this relation."
        ),
        click.option("--originals", is_flag=True, help="One row per story: its original."),
        click.option(
            "--min-score",
            type=click.FloatRange(0, 1),
            metavar="S",
            help="Originals, and copies whose copy verdict scored at least S (0-1).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _item_filter(store: Store, now: datetime, **options: Any) -> ItemFilter:
    names = tuple(options.get("names") or ())
    if names:
        known = {f.name for f in store.feeds(in_config_only=False)}
        unknown = sorted(set(names) - known)
        if unknown:
            raise UsageError(f"unknown feed {', '.join(map(repr, unknown))}")
    return ItemFilter(
        since=_since(options.get("since"), now),
        until=_since(options.get("until"), now),
        publishers=tuple(options.get("publishers") or ()),
        feeds=names,
        tags=tuple(options.get("tags") or ()),
        tickers=tuple(options.get("tickers") or ()),
        relation=options.get("relation"),
        originals=bool(options.get("originals")),
        min_score=options.get("min_score"),
    )


def _limit_option(func: F) -> F:
    return click.option(
        "--limit",
        type=click.IntRange(min=0),
        default=50,
        show_default=True,
        help="Rows to show; 0 means no limit.",
    )(func)


def _items_table(rows: Sequence[StoredItem]) -> str:
    if not rows:
        return "no items"
    return _table(
        ("ID", "PUBLISHED", "FEED", "STORY", "RELATION", "TITLE"),
        [
            [
                i.id,
                _iso(i.published),
                i.feed,
                i.story_id if i.story_size > 1 else "",
                i.relation if i.story_size > 1 else "",
                _shorten(i.title or "(no title)", 80),
            ]
            for i in rows
        ],
    )


@cli.command()
@_filter_options
@_limit_option
@_output_options
@click.pass_obj
def items(state: _State, /, limit: int, output: str | None, **filters: Any) -> None:
    """List stored items, newest first, with their place in a story.

    RELATION is `original` for a story's first item (or an item with no copies),
    else `syndicated`, `version` or `duplicate`; STORY is the id of the original.
    """
    with state.open_reader() as store:
        rows = store.filtered_items(_item_filter(store, utc_now(), **filters), limit or None)
    _emit(output, [_item_json(i) for i in rows], lambda: _items_table(rows))


@cli.command()
@click.argument("query")
@_filter_options
@_limit_option
@_output_options
@click.pass_obj
def search(state: _State, /, query: str, limit: int, output: str | None, **filters: Any) -> None:
    """Full-text search over titles and bodies, best matches first.

    Plain words must all appear (any form: "magnets" finds "magnet"); FTS5
    syntax works too: "an exact phrase", OR, NOT, NEAR(a b, 5), prefix*.
    Matches are marked «like this» in the snippet.
    """
    with state.open_reader() as store:
        hits = store.search(query, _item_filter(store, utc_now(), **filters), limit or None)
    records = [{**_item_json(h.item), "snippet": h.snippet, "rank": round(h.rank, 4)} for h in hits]

    def table() -> str:
        if not hits:
            return "no matches"
        lines = []
        for hit in hits:
            item = hit.item
            lines.append(
                f"[{item.id}] {_iso(item.published)}  {item.publisher}  {_shorten(item.title, 80)}"
            )
            lines.append(f"    {_shorten(' '.join(hit.snippet.split()), 150)}")
        return "\n".join(lines)

    _emit(output, records, table)


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "atom", "rss"]),
    required=True,
    help="jsonl/csv: one record per item (per story with --collapse); atom/rss: a feed "
    "with one entry per story, the original's link and the copies as related links.",
)
@click.option(
    "--output",
    required=True,
    metavar="PATH",
    help="File to write (strftime fields allowed: news-%Y%m%d-%H%M.jsonl); - for stdout. "
    "With --cursor an existing file is never replaced: the new one is named news-...-1.jsonl "
    "(-2, ...); without, the file is a snapshot and replaces the last one.",
)
@click.option(
    "--cursor",
    metavar="NAME",
    help="Incremental: only items stored or changed since the last successful run "
    "with this cursor (the first run exports everything). A second run of one cursor while "
    "the first is still running fails at once and writes nothing.",
)
@click.option("--collapse", is_flag=True, help="One record per story, with its copies listed.")
@_filter_options
@click.pass_obj
def export(
    state: _State,
    /,
    fmt: str,
    output: str,
    cursor: str | None,
    collapse: bool,
    **filters: Any,
) -> None:
    """Write stored items to a file for other tools, e.g. hourly from cron.

    The file is written to a temporary name, synced and renamed into place; the
    cursor moves only after that. A run with nothing new writes nothing (exit 0).
    In CSV, a text cell starting with = + - @, a tab or a CR gets a leading ' so a
    spreadsheet shows it instead of running it as a formula.
    """
    from aggregator.export import run_export

    now = utc_now()
    with state.open_reader() as store:
        result = run_export(
            store,
            fmt=fmt,
            output=output,
            cursor=cursor,
            collapse=collapse,
            filters=_item_filter(store, now, **filters),
            now=now,
        )
    if result.path is None:
        click.echo("nothing new to export" if cursor else "no items match", err=True)
    elif result.path != "-":
        click.echo(
            f"wrote {result.items} items ({result.stories} stories) to {result.path}", err=True
        )


@cli.command()
@click.option(
    "--since",
    metavar="AGE|ISO",
    default="30d",
    show_default=True,
    help="Count items published within this age or after this time.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the most-copied stories to list.",
)
@_json_option
@click.pass_obj
def stats(state: _State, since: str, top: int, as_json: bool) -> None:
    """Items per publisher, who republishes whom (and how fast), most-copied stories.

    The syndication matrix counts `syndicated` links from the publisher copied
    (SOURCE) to the one copying (COPIER), with the median lag between them.
    """
    with state.open_reader() as store:
        result = store.stats(_since(since, utc_now()), top)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "publishers": [
                        {"publisher": p, "items": n, "originals_copied": c}
                        for p, n, c in result.items_by_publisher
                    ],
                    "matrix": [
                        {
                            "source": m.source,
                            "copier": m.copier,
                            "copies": m.copies,
                            "median_lag_seconds": m.median_lag_seconds,
                        }
                        for m in result.matrix
                    ],
                    "top_stories": [
                        {"story_id": i, "items": n, "publisher": p, "title": t}
                        for i, n, p, t in result.top_stories
                    ],
                    "feeds_in_error": [
                        {"feed": f, "error_count": n, "last_error": e}
                        for f, n, e in result.feeds_in_error
                    ],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    click.echo(_table(("PUBLISHER", "ITEMS", "ORIGINALS COPIED"), list(result.items_by_publisher)))
    click.echo("")
    click.echo("Syndication (who copies whom):")
    click.echo(
        _table(
            ("SOURCE", "COPIER", "COPIES", "MEDIAN LAG"),
            [
                [m.source, m.copier, m.copies, _lag(int(m.median_lag_seconds))]
                for m in result.matrix
            ],
        )
        if result.matrix
        else "no syndicated copies yet"
    )
    click.echo("")
    click.echo("Most-copied stories:")
    click.echo(
        _table(
            ("STORY", "ITEMS", "ORIGINAL", "TITLE"),
            [[i, n, p, _shorten(t, 70)] for i, n, p, t in result.top_stories],
        )
        if result.top_stories
        else "none"
    )
    if result.feeds_in_error:
        click.echo("")
        click.echo("Feeds in error:")
        click.echo(
            _table(
                ("FEED", "ERRORS", "LAST ERROR"),
                [[f, n, _shorten(e, 70)] for f, n, e in result.feeds_in_error],
            )
        )


def _chain_lines(story: list[StoredItem], marked: int | None = None) -> list[str]:
    """The story as a tree: the original first, each copy indented under its parent."""
    by_parent: dict[int | None, list[StoredItem]] = {}
    ids = {item.id for item in story}
    for item in story:
        parent = item.parent_id if item.parent_id in ids else None
        by_parent.setdefault(parent, []).append(item)
    lines: list[str] = []

    def walk(item: StoredItem, depth: int) -> None:
        mark = "*" if item.id == marked else " "
        details = [item.publisher, _iso(item.published) or ""]
        if item.parent_id is not None:
            details += [
                _lag(item.lag_seconds),
                item.relation,
                f"similarity {item.similarity:.2f}" if item.similarity is not None else "",
                f"containment {item.containment:.2f}" if item.containment is not None else "",
                f"by {item.method}" if item.method else "",
            ]
        else:
            details.append("original")
        prefix = "  " * depth + ("└─ " if depth else "")
        lines.append(f"{mark} {prefix}[{item.id}] " + "  ".join(d for d in details if d))
        lines.append(f"  {'  ' * depth}{'   ' if depth else ''}{_shorten(item.title, 90)}")
        for child in by_parent.get(item.id, []):
            walk(child, depth + 1)

    for root in by_parent.get(None, []):
        walk(root, 0)
    return lines


@cli.command()
@click.argument("item_id", type=int, metavar="ID")
@_json_option
@click.pass_obj
def show(state: _State, item_id: int, as_json: bool) -> None:
    """Show one item and its story's whole chain as a tree.

    The original is at the top; each copy is indented under the copy it most
    likely came from, with publisher, time, lag from its parent, relation and
    similarity. The item asked for is marked with *.
    """
    with state.open_reader() as store:
        item = store.item(item_id)
        if item is None:
            raise UsageError(f"no item with id {item_id}")
        story = store.story(item.story_id)
    if as_json:
        click.echo(
            json.dumps(
                {"item": _item_json(item), "story": [_item_json(i) for i in story]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"[{item.id}] {item.title}")
    click.echo(f"{item.publisher} ({item.feed})  {_iso(item.published)}  {item.url or ''}")
    if item.summary_text:
        click.echo("")
        click.echo(_shorten(" ".join(item.summary_text.split()), 400))
    click.echo("")
    publishers = len({i.publisher for i in story})
    click.echo(f"Story {item.story_id}: {len(story)} items from {publishers} publishers")
    for line in _chain_lines(story, marked=item.id):
        click.echo(line)


@cli.command()
@click.option("--since", metavar="AGE|ISO", help="Originals published within this age or after.")
@click.option(
    "--min-copies",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Only stories with at least this many copies (0 lists every story).",
)
@_limit_option
@_output_options
@click.pass_obj
def stories(
    state: _State, since: str | None, min_copies: int, limit: int, output: str | None
) -> None:
    """List stories with their original, number of copies and publishers."""
    cutoff = _since(since, utc_now())
    with state.open_reader() as store:
        rows = store.stories(since=cutoff, min_copies=min_copies, limit=limit or None)
    records: list[dict[str, object]] = [
        {
            "story_id": s.original.id,
            "copies": s.size - 1,
            "publishers": list(s.publishers),
            "last_published": _iso(s.last_published),
            "original": _item_json(s.original),
        }
        for s in rows
    ]
    if output == "csv":
        # A flat row per story: the original's fields inline.
        records = [
            {**{k: v for k, v in r.items() if k != "original"}, **r["original"]}  # type: ignore[dict-item]
            for r in records
        ]

    def table() -> str:
        if not rows:
            return "no stories with copies" if min_copies else "no stories"
        return _table(
            ("STORY", "PUBLISHED", "ORIGINAL", "COPIES", "PUBLISHERS", "TITLE"),
            [
                [
                    s.original.id,
                    _iso(s.original.published),
                    s.original.publisher,
                    s.size - 1,
                    _shorten(", ".join(s.publishers), 40),
                    _shorten(s.original.title, 70),
                ]
                for s in rows
            ],
        )

    _emit(output, records, table)


@cli.command()
@click.option("--rebuild", is_flag=True, required=True, help="Recompute signatures and chains.")
@click.option(
    "--since",
    metavar="AGE|ISO",
    help="Only items published since then (default: all; required after a parameter change).",
)
@click.pass_obj
def dedup(state: _State, rebuild: bool, since: str | None) -> None:
    """Recompute signatures, learned boilerplate and story links of stored items.

    Run after changing [dedup] parameters in config.toml (without --since), or
    to re-link recent items with new thresholds (with --since).
    """
    from aggregator.linker import rebuild as run_rebuild

    settings = state.settings()
    cutoff = _since(since, utc_now())
    with state.open_store() as store:
        total = len(store.item_ids_by_published(cutoff))
        with click.progressbar(
            length=total, label="re-linking", show_pos=True, show_eta=True, file=sys.stderr
        ) as bar:
            shown = 0

            def advance(done: int) -> None:
                nonlocal shown
                bar.update(done - shown)
                shown = done

            found = run_rebuild(store, settings, since=cutoff, progress=advance)
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(found.items())) or "nothing"
    click.echo(f"{total} items re-linked: {summary}")


@cli.command()
@click.pass_obj
def run(state: _State) -> None:
    """Run the daemon: poll feeds as they fall due until stopped.

    SIGTERM or SIGINT stops it (in-flight feeds get [daemon] shutdown_timeout to
    commit; exit 0); SIGHUP reloads the config file. Only one daemon (or poll)
    can work a database at a time. Logs one line per poll on stderr.
    """
    from aggregator.daemon import Daemon

    settings = state.settings()
    daemon = Daemon(
        settings,
        config_path=Path(state.config) if state.config else None,
        db_path=state.db_path(),
    )
    sys.exit(daemon.run())


def _counted_by_config(
    status: StoreStatus, configs: Sequence[FeedConfig], known: set[str], due: set[str]
) -> StoreStatus:
    """The status's feed counts over the feeds the config lists.

    `known` are the feeds the store has, `due` those it finds due now; a listed feed
    the store does not have yet has never been polled, so it is due now.
    """
    names = {config.name for config in configs}
    return replace(
        status,
        feeds=len(names),
        feeds_due=len(names & due) + len(names - known),
        feeds_in_backoff=tuple(f for f in status.feeds_in_backoff if f.name in names),
    )


def _status_json(status: StoreStatus, running: dict[str, object] | None) -> dict[str, object]:
    return {
        "running": running is not None,
        "pid": (running or {}).get("pid", status.pid),
        "host": status.host,
        "version": status.version,
        "started_at": _iso(status.started_at),
        "last_tick_at": _iso(status.last_tick_at),
        "stopped_at": _iso(status.stopped_at),
        "feeds": status.feeds,
        "feeds_due": status.feeds_due,
        "feeds_in_backoff": [
            {
                "name": f.name,
                "error_count": f.error_count,
                "last_error": f.last_error,
                "next_check_at": _iso(f.next_check_at),
            }
            for f in status.feeds_in_backoff
        ],
        "items_last_hour": status.items_last_hour,
        "items_last_day": status.items_last_day,
        "items_total": status.items_total,
    }


@cli.command()
@_json_option
@click.pass_obj
def status(state: _State, as_json: bool) -> None:
    """Show the daemon's state and the store's health, from the database.

    Whether a daemon runs now, since when, its last tick, feeds due now, feeds
    backing off after errors (with their last error) and items stored in the
    last hour and day.
    """
    db_path = state.existing_db()
    # The config's feed list when the config names the database or is named itself: the
    # store learns of a feed only when a poll (or `feeds`) syncs the list, so its own
    # count read 0 until then. `--db` alone reads any database as the others do, by what
    # its store holds (a ./config.toml beside it may list another set of feeds).
    configs = state.settings().feeds if state.db is None or state.config else None
    now = utc_now()
    with state.open_store() as store:
        current = store.status(now)
        if configs is not None:
            known = {f.name for f in store.feeds(in_config_only=False)}
            due = {f.name for f in store.due_feeds(now)}
            current = _counted_by_config(current, configs, known, due)
    running = lock_holder(db_path)
    if as_json:
        click.echo(json.dumps(_status_json(current, running), indent=2))
        return
    if running is not None and running.get("role") == "run":
        click.echo(
            f"daemon: running (pid {running.get('pid')} on {current.host}) "
            f"since {_iso(current.started_at)}"
        )
    elif running is not None:
        click.echo(f"daemon: not running; `aggregator {running.get('role')}` is polling now")
    elif current.started_at is None:
        click.echo("daemon: never started on this database")
    elif current.stopped_at is None:
        click.echo(f"daemon: not running (the run started {_iso(current.started_at)} crashed)")
    else:
        click.echo(f"daemon: not running (stopped {_iso(current.stopped_at)})")
    click.echo(f"last tick: {_iso(current.last_tick_at) or '-'}")
    click.echo(f"feeds: {current.feeds} configured, {current.feeds_due} due now")
    click.echo(
        f"items: {current.items_last_hour} in the last hour, {current.items_last_day} in the "
        f"last day, {current.items_total} in all"
    )
    if current.feeds_in_backoff:
        click.echo(f"backing off ({len(current.feeds_in_backoff)}):")
        click.echo(
            _table(
                ("FEED", "ERRORS", "NEXT TRY", "LAST ERROR"),
                [
                    [f.name, f.error_count, _iso(f.next_check_at), _shorten(f.last_error or "", 70)]
                    for f in current.feeds_in_backoff
                ],
            )
        )


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Items stored (and linked) per transaction.",
)
@click.pass_obj
def import_(state: _State, file: Path, batch: int) -> None:
    """Backfill archived news from a JSONL file through the same link-and-store path.

    Each line: {"title", "url", "published" (ISO 8601), "publisher", "text" or "html",
    optional "id"}; title and text are plain text, not markup. Items go to one
    pseudo-feed per publisher (import-NAME, never polled) and are linked to stories
    like polled items. Re-running skips what is already stored, so an interrupted
    import resumes. Bad lines (not UTF-8 JSON, over 16 MiB, no publisher, no title or text,
    a "published" that is not ISO 8601) are skipped and counted; the first is shown.
    `aggregator --db FILE import ...` needs no config file: without one, the default
    [dedup] settings are used.
    """
    from aggregator.backfill import count_lines, run_import

    settings = state.settings_or_defaults()
    total = count_lines(file)
    started = time.monotonic()
    with (
        DatabaseLock(state.db_path(), role="import"),
        state.open_store() as store,
        click.progressbar(
            length=total, label="importing", show_pos=True, show_eta=True, file=sys.stderr
        ) as bar,
    ):
        result = run_import(store, settings, file, now=utc_now(), batch=batch, progress=bar.update)
    seconds = max(time.monotonic() - started, 1e-9)
    linked = sum(n for kind, n in result.links.items() if kind != "original")
    click.echo(
        f"{result.read} lines: {result.new} new items ({linked} linked to a story), "
        f"{result.already_stored} already stored, {result.skipped} skipped; "
        f"{result.read / seconds:.0f} items/s"
    )
    if result.first_problem:
        click.echo(f"first skipped line: {result.first_problem}", err=True)


@cli.command()
@click.option(
    "--demo-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder with feeds.toml and the sample feeds [default: data/demo].",
)
@click.pass_obj
def demo(state: _State, demo_dir: Path | None) -> None:
    """Serve the bundled sample feeds on 127.0.0.1, poll them twice, show what was stored.

    Runs offline and needs no config file. The database (data/demo.db, or the
    global --db) is recreated on each run. The second poll shows conditional
    GET at work: the feeds answer 304 Not Modified and nothing is duplicated.
    """
    from aggregator.demo import DEFAULT_DEMO_DB, find_demo_dir, run_demo

    result = run_demo(demo_dir or find_demo_dir(), Path(state.db) if state.db else DEFAULT_DEMO_DB)
    click.echo("First poll (empty database):")
    click.echo(_table(_REPORT_HEADERS, [_report_row(r) for r in result.first_poll]))
    not_modified = sum(1 for r in result.second_poll if r.outcome.value == "not_modified")
    second_new = sum(r.items_new for r in result.second_poll)
    click.echo(
        f"\nSecond poll: {second_new} new items; {not_modified} of {len(result.second_poll)} "
        "feeds answered 304 Not Modified."
    )
    click.echo(f"\nStored {len(result.items)} items in {result.db_path}, newest first:")
    click.echo(
        _table(
            ("ID", "PUBLISHED", "FEED", "TITLE"),
            [
                [i.id, _iso(i.published), i.feed, _shorten(i.title or "(no title)", 80)]
                for i in result.items
            ],
        )
    )
    copies = sum(len(chain) - 1 for chain in result.chains)
    click.echo(
        f"\nSyndication: {len(result.chains)} stories carried by more than one item "
        f"({copies} copies):"
    )
    for chain in result.chains:
        click.echo("")
        for line in _chain_lines(list(chain)):
            click.echo(line)
    db = result.db_path
    click.echo(
        f"\nLook around: aggregator --db {db} stories   |   aggregator --db {db} show ID"
        f"   |   aggregator --db {db} items --json"
    )
    missing = _missing_web_extra()
    click.echo("\nSee it" + (f" (after pip install '{_WEB_EXTRA}'):" if missing else ":"))
    click.echo(f"  aggregator --db {db} serve                         # browse stories and chains")
    click.echo(f"  aggregator --db {db} report --output report.html   # syndication charts")


_WEB_EXTRA = "aggregator[web]"
# Modules of the web extra: a missing one means the extra is not installed.
_WEB_MODULES = ("datasette", "uvicorn", "markupsafe", "matplotlib")


def _missing_web_extra() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) is None for name in _WEB_MODULES)


def _web_extra_error(command: str, error: ModuleNotFoundError) -> AggregatorError:
    if (error.name or "").partition(".")[0] not in _WEB_MODULES:
        raise error
    return AggregatorError(
        f"`aggregator {command}` needs the web extra ({error.name} is not installed): "
        f"pip install '{_WEB_EXTRA}'"
    )


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.pass_obj
def serve(state: _State, host: str, port: int) -> None:
    """Browse stories, chains and feeds in a web page (Datasette, read-only).

    Latest stories, one story's chain as a tree, search, feeds in error and the
    syndication matrix are ready-made pages; any read-only SQL works too. Needs
    the web extra: pip install 'aggregator[web]'. Ctrl-C stops it.
    """
    db_path = state.existing_db()
    try:
        from aggregator.web import serve as run_server
    except ModuleNotFoundError as e:
        raise _web_extra_error("serve", e) from e

    def ready(url: str) -> None:
        click.echo(f"Serving {db_path} read-only at {url} (Ctrl-C stops)")
        sys.stdout.flush()

    run_server(db_path, host, port, ready)


@cli.command()
@click.option(
    "--since",
    metavar="AGE|ISO",
    default="30d",
    show_default=True,
    help="Chart items published within this age or after this time.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write (one self-contained file: no network needed to open it).",
)
@click.pass_obj
def report(state: _State, since: str, output: Path) -> None:
    """Write a syndication report with charts to one HTML file.

    Who copies whom (a publisher x publisher heatmap), how long copies take per
    pair of publishers, items and stories per day, and the feeds' health. Needs
    the web extra: pip install 'aggregator[web]'.
    """
    db_path = state.existing_db()
    try:
        from aggregator.report import write_report
    except ModuleNotFoundError as e:
        raise _web_extra_error("report", e) from e

    now = utc_now()
    summary = write_report(db_path, output, since=_since(since, now), now=now)
    click.echo(f"wrote {output}: {summary}")


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="aggregator")


if __name__ == "__main__":
    main(sys.argv[1:])
