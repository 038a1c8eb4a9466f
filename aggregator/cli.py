"""The `aggregator` command: a thin click shell over the pipeline and the store.

Errors the aggregator raises on purpose become one line on stderr and the
error's exit code; nothing prints a traceback unless AGGREGATOR_DEBUG is set.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from aggregator import __version__
from aggregator.config import ENV_VAR, load_settings, parse_duration
from aggregator.demo import DEFAULT_DEMO_DB, find_demo_dir, run_demo
from aggregator.errors import AggregatorError, UsageError
from aggregator.models import Feed, PollReport, Settings, StoredItem
from aggregator.pipeline import poll as run_poll
from aggregator.pipeline import utc_now
from aggregator.store import DEFAULT_BUSY_TIMEOUT, Store, format_time

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

    def open_store(self) -> Store:
        """--db wins over [storage] path; without --db the config file is required."""
        if self.db:
            busy = self._settings.busy_timeout if self._settings else DEFAULT_BUSY_TIMEOUT
            return Store.open(Path(self.db), busy_timeout=busy)
        settings = self.settings()
        return Store.open(settings.db_path, busy_timeout=settings.busy_timeout)


def _json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


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
    default="warning",
    show_default=True,
    help="Log messages at this level and above go to stderr.",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(ctx: click.Context, config: str | None, db: str | None, log_level: str) -> None:
    """Poll financial-news feeds, store every item in SQLite and link syndicated copies.

    Configuration comes from --config, else $AGGREGATOR_CONFIG, else ./config.toml.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
        "duration": round(report.duration, 3),
        "error": report.error,
        "warning": report.warning,
        "url": report.url,
    }


_REPORT_HEADERS = ("FEED", "OUTCOME", "STATUS", "NEW", "UPDATED", "TIME", "DETAIL")


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
    settings = state.settings()
    with state.open_store() as store:
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
        failed = sum(1 for r in reports if r.error)
        click.echo(
            f"{len(reports)} feeds polled: {new} new items, {updated} updated, {failed} failed"
        )


def _feed_status(feed: Feed) -> str:
    if not feed.active:
        return "gone"
    if feed.last_polled_at is None:
        return "never polled"
    return "error" if feed.error_count else "ok"


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


@cli.command()
@_json_option
@click.pass_obj
def feeds(state: _State, as_json: bool) -> None:
    """List configured feeds with their polling status and item counts."""
    settings = state.settings()
    with state.open_store() as store:
        store.sync_feeds(settings.feeds, utc_now())
        rows = store.feeds()
    if as_json:
        click.echo(json.dumps([_feed_json(f) for f in rows], indent=2))
        return
    if not rows:
        click.echo("no feeds configured")
        return
    click.echo(
        _table(
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
    )


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
        "summary": item.summary_text,
    }


@cli.command()
@click.option("--feed", "names", multiple=True, metavar="NAME", help="Only this feed (repeatable).")
@click.option(
    "--since", metavar="AGE|ISO", help="Published within this age (24h, 7d) or after this time."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_json_option
@click.pass_obj
def items(
    state: _State, names: tuple[str, ...], since: str | None, limit: int, as_json: bool
) -> None:
    """List stored items, newest first."""
    cutoff = _since(since, utc_now())
    with state.open_store() as store:
        if names:
            known = {f.name for f in store.feeds(in_config_only=False)}
            unknown = sorted(set(names) - known)
            if unknown:
                raise UsageError(f"unknown feed {', '.join(map(repr, unknown))}")
        rows = store.items(feeds=names or None, since=cutoff, limit=limit)
    if as_json:
        click.echo(json.dumps([_item_json(i) for i in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no items")
        return
    click.echo(
        _table(
            ("PUBLISHED", "FEED", "TITLE"),
            [[_iso(i.published), i.feed, _shorten(i.title or "(no title)", 90)] for i in rows],
        )
    )


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
            ("PUBLISHED", "FEED", "TITLE"),
            [
                [_iso(i.published), i.feed, _shorten(i.title or "(no title)", 80)]
                for i in result.items
            ],
        )
    )
    click.echo(
        f"\nLook around: aggregator --db {result.db_path} items --limit 10"
        f"  |  aggregator --db {result.db_path} items --json"
    )


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="aggregator")


if __name__ == "__main__":
    main(sys.argv[1:])
