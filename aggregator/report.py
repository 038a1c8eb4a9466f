"""`aggregator report`: one self-contained HTML file of syndication charts.

The only module that imports matplotlib. Charts are drawn with the Agg backend (no
display needed) and inlined as SVG, text kept as text, so the file opens offline,
scales without blurring and its labels can be searched. The figures come from
`store.views.report_data`; everything below turns that record into HTML.
"""

from __future__ import annotations

import html
import io
import os
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): pyplot picks its backend on import
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from aggregator import __version__
from aggregator.errors import AggregatorError
from aggregator.models import FetchOutcome
from aggregator.store.times import format_time
from aggregator.store.views import CopyLink, FeedHealth, ReportData, report_data

# Beyond these the labels no longer fit; the tables below the charts list everything.
MAX_PUBLISHERS = 25
MAX_PAIRS = 20
MAX_FEEDS = 40

_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text: searchable, and no glyph outlines to bloat
    "svg.hashsalt": "aggregator",  # stable element ids: the same data gives the same file
    "text.parse_math": False,  # a "$" in a publisher's name is a dollar, not TeX
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
}
# Legends sit right of the plot so they never hide a bar or a dot.
_LEGEND_OUTSIDE: dict[str, Any] = {
    "loc": "upper left",
    "bbox_to_anchor": (1.01, 1.0),
    "frameon": False,
    "fontsize": 9,
}
_OUTCOME_COLOURS = {
    FetchOutcome.OK.value: "#2f855a",
    FetchOutcome.NOT_MODIFIED.value: "#90cdf4",
    FetchOutcome.GONE.value: "#4a5568",
    FetchOutcome.HTTP_ERROR.value: "#e53e3e",
    FetchOutcome.TIMEOUT.value: "#dd6b20",
    FetchOutcome.NETWORK_ERROR.value: "#c05621",
    FetchOutcome.TOO_LARGE.value: "#805ad5",
    FetchOutcome.REFUSED.value: "#b83280",
}


def _svg(figure: Figure, name: str) -> str:
    buffer = io.StringIO()
    # Each chart gets its own salt so element ids never collide inside one page.
    with plt.rc_context({**_STYLE, "svg.hashsalt": f"aggregator-{name}"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Figure:
    with plt.rc_context(_STYLE):
        figure = plt.figure(figsize=(width, height))
    return figure


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- charts ---------------------------------------------------------------------------


def matrix_chart(copies: Sequence[CopyLink]) -> str | None:
    """Heatmap of syndicated copies: publishers copied (rows) by publishers copying."""
    if not copies:
        return None
    involvement = Counter[str]()
    for copy in copies:
        involvement[copy.source] += 1
        involvement[copy.copier] += 1
    publishers = sorted(name for name, _ in involvement.most_common(MAX_PUBLISHERS))
    index = {name: n for n, name in enumerate(publishers)}
    counts = [[0] * len(publishers) for _ in publishers]
    for copy in copies:
        if copy.source in index and copy.copier in index:
            counts[index[copy.source]][index[copy.copier]] += 1
    top = max(max(row) for row in counts)
    size = max(4.0, 0.55 * len(publishers) + 2.5)
    with plt.rc_context(_STYLE):
        figure = _figure(size + 1.5, size)
        axes = figure.add_subplot()
        image = axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(top, 1), aspect="equal")
        labels = [_short(p) for p in publishers]
        axes.set_xticks(range(len(publishers)), labels, rotation=35, ha="right")
        axes.set_yticks(range(len(publishers)), labels)
        axes.set_xlabel("Copier (published the copy)")
        axes.set_ylabel("Source (published first)")
        axes.set_title("Who copies whom")
        for row, values in enumerate(counts):
            for column, value in enumerate(values):
                if value:
                    colour = "white" if value > top * 0.55 else "#1a202c"
                    axes.text(column, row, str(value), ha="center", va="center", color=colour)
        for side in ("top", "right", "bottom", "left"):
            axes.spines[side].set_visible(False)
        axes.set_xticks([x - 0.5 for x in range(1, len(publishers))], minor=True)
        axes.set_yticks([y - 0.5 for y in range(1, len(publishers))], minor=True)
        axes.grid(which="minor", color="#e2e8f0", linewidth=0.8)
        axes.tick_params(which="minor", length=0)
        bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        bar.set_label("Syndicated copies (count)")
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure, "matrix")


def _lag_unit(seconds: Sequence[int]) -> tuple[str, float]:
    longest = max(abs(s) for s in seconds)
    if longest <= 6 * 3600:
        return "minutes", 60.0
    if longest <= 7 * 86400:
        return "hours", 3600.0
    return "days", 86400.0


def lag_chart(copies: Sequence[CopyLink]) -> str | None:
    """Each copy's lag as a dot on its pair's row, with the pair's median marked."""
    if not copies:
        return None
    by_pair: dict[tuple[str, str], list[int]] = {}
    for copy in copies:
        by_pair.setdefault((copy.source, copy.copier), []).append(copy.lag_seconds)
    pairs = sorted(by_pair, key=lambda p: (-len(by_pair[p]), p))[:MAX_PAIRS]
    unit, divisor = _lag_unit([s for p in pairs for s in by_pair[p]])
    with plt.rc_context(_STYLE):
        figure = _figure(9.0, max(2.2, 0.5 * len(pairs) + 1.4))
        axes = figure.add_subplot()
        for row, pair in enumerate(pairs):
            values = [s / divisor for s in by_pair[pair]]
            # Spread equal lags a little so every copy stays visible; fixed offsets keep
            # the chart the same from run to run.
            offsets = [((n * 7) % 11 - 5) * 0.035 for n in range(len(values))]
            axes.scatter(
                values,
                [row + o for o in offsets],
                s=55,
                color="#3182ce",
                alpha=0.8,
                edgecolors="white",
                linewidths=0.6,
                zorder=4,
            )
            median = statistics.median(values)
            axes.plot([median, median], [row - 0.3, row + 0.3], color="#c05621", lw=2.5, zorder=3)
        axes.set_yticks(
            range(len(pairs)),
            [f"{_short(s, 22)} → {_short(c, 22)}  (n={len(by_pair[(s, c)])})" for s, c in pairs],
        )
        axes.set_ylim(len(pairs) - 0.5, -0.5)
        axes.set_xlim(left=min(0.0, *(s / divisor for p in pairs for s in by_pair[p])))
        axes.set_xlabel(f"Lag from the original to the copy ({unit})")
        axes.set_title("How long copies take, per pair (source → copier)")
        axes.grid(axis="x", color="#e2e8f0", zorder=0)
        axes.plot([], [], color="#c05621", lw=2.5, label="median")
        axes.scatter([], [], s=55, color="#3182ce", label="one copy")
        axes.legend(**_LEGEND_OUTSIDE)
    return _svg(figure, "lag")


def daily_chart(data: ReportData) -> str | None:
    """Items and new stories per day, days without items included as zero."""
    if not data.days:
        return None
    counts = {d.day: d for d in data.days}
    first, last = data.days[0].day, data.days[-1].day
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    items = [counts[d].items if d in counts else 0 for d in days]
    stories = [counts[d].stories if d in counts else 0 for d in days]
    copied = [counts[d].copied_stories if d in counts else 0 for d in days]
    positions = list(range(len(days)))
    with plt.rc_context(_STYLE):
        figure = _figure(max(6.0, min(14.0, 0.32 * len(days) + 3)), 3.8)
        axes = figure.add_subplot()
        width = 0.28
        axes.bar([p - width for p in positions], items, width, color="#90cdf4", label="items")
        axes.bar(positions, stories, width, color="#3182ce", label="new stories (originals)")
        axes.bar(
            [p + width for p in positions],
            copied,
            width,
            color="#c05621",
            label="stories with copies",
        )
        step = -(-len(days) // 10)  # at most ten labels: a date takes room
        axes.set_xticks(positions[::step], [d.strftime("%d %b") for d in days[::step]])
        axes.set_xlabel(
            f"Day published (UTC), {first:%Y}"
            + (f" to {last:%Y}" if last.year != first.year else "")
        )
        axes.set_ylabel("Count per day")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title("Items and stories per day")
        axes.grid(axis="y", color="#e2e8f0", zorder=0)
        axes.set_axisbelow(True)
        axes.legend(**_LEGEND_OUTSIDE)
    return _svg(figure, "daily")


def health_chart(feeds: Sequence[FeedHealth]) -> str | None:
    """Polls per feed in the period, stacked by outcome; feeds failing now are flagged."""
    shown = [f for f in feeds if f.fetches or f.error_count][:MAX_FEEDS]
    if not shown:
        return None
    outcomes = [o.value for o in FetchOutcome if any(dict(f.fetches).get(o.value) for f in shown)]
    with plt.rc_context(_STYLE):
        figure = _figure(9.0, max(2.2, 0.38 * len(shown) + 1.4))
        axes = figure.add_subplot()
        left = [0] * len(shown)
        rows = range(len(shown))
        for outcome in outcomes:
            values = [dict(f.fetches).get(outcome, 0) for f in shown]
            axes.barh(
                rows,
                values,
                left=left,
                color=_OUTCOME_COLOURS.get(outcome, "#a0aec0"),
                label=outcome.replace("_", " "),
                height=0.6,
            )
            left = [a + b for a, b in zip(left, values, strict=True)]
        most = max(left) or 1
        for row, feed in enumerate(shown):
            if feed.error_count:
                axes.text(
                    left[row] + most * 0.02,
                    row,
                    f"failing: {feed.error_count} in a row",
                    va="center",
                    color="#c53030",
                    fontsize=9,
                )
        axes.set_yticks(list(rows), [_short(f.name, 30) for f in shown])
        axes.set_ylim(len(shown) - 0.5, -0.5)
        # Room on the right for the "failing" notes, when there are any.
        axes.set_xlim(0, most * (1.35 if any(f.error_count for f in shown) else 1.02))
        axes.set_xlabel("Polls in the period (count)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title("Feeds' health: poll outcomes")
        axes.grid(axis="x", color="#e2e8f0", zorder=0)
        axes.set_axisbelow(True)
        if outcomes:
            axes.legend(**_LEGEND_OUTSIDE)
    return _svg(figure, "health")


# -- the page ---------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c;
  max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #e2e8f0; }
.lead { color: #4a5568; margin-top: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; padding: 0; list-style: none; }
.figures li { background: #f7fafc; border: 1px solid #e2e8f0; border-radius: 6px;
  padding: 0.6em 1em; min-width: 8em; }
.figures b { display: block; font-size: 1.6em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #4a5568; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 0.3em 0.7em; text-align: left;
  vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #c53030; } .empty { color: #718096; font-style: italic; }
footer { margin-top: 3em; color: #718096; font-size: 0.85em; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _lag_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    if abs(minutes) < 120:
        return f"{minutes} min"
    if abs(minutes) < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(svg: str | None, name: str, caption: str, empty: str) -> str:
    if svg is None:
        return f'<p class="empty" id="{name}-empty">{_e(empty)}</p>'
    return f'<figure id="{name}" class="chart">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _pair_rows(copies: Sequence[CopyLink]) -> list[list[object]]:
    by_pair: dict[tuple[str, str], list[int]] = {}
    for copy in copies:
        by_pair.setdefault((copy.source, copy.copier), []).append(copy.lag_seconds)
    return [
        [
            source,
            copier,
            len(lags),
            _lag_text(statistics.median(lags)),
            _lag_text(min(lags)),
            _lag_text(max(lags)),
        ]
        for (source, copier), lags in sorted(by_pair.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def _feed_state(feed: FeedHealth) -> str:
    if not feed.active:
        return "gone"
    if feed.last_polled_at is None:
        return "never polled"
    return "error" if feed.error_count else "ok"


def render_report(data: ReportData, now: datetime) -> str:
    """The report as one HTML document: inline CSS and SVG, no scripts, no links out."""
    period_from = format_time(data.since) if data.since else "the first item"
    copied_stories = sum(d.copied_stories for d in data.days)
    failing = [f for f in data.feeds if f.error_count or not f.active]
    figures = [
        ("items", data.items),
        ("stories", data.stories),
        ("stories with copies", copied_stories),
        ("syndicated copies", len(data.copies)),
        ("publishers", len(data.publishers)),
        ("feeds failing now", len(failing)),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Syndication report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Syndication report</h1>",
        f'<p class="lead">Items published from {_e(period_from)} to {_e(format_time(now))}'
        + (
            f" (stored items span {_e(format_time(data.first_published))} to "
            f"{_e(format_time(data.last_published))})"
            if data.first_published and data.last_published
            else ""
        )
        + ". Times are UTC.</p>",
        '<ul class="figures">'
        + "".join(f"<li><b>{n}</b>{_e(label)}</li>" for label, n in figures)
        + "</ul>",
        "<h2>Who copies whom</h2>",
        _figure_html(
            matrix_chart(data.copies),
            "matrix",
            "Each cell counts the stories the row's publisher published first and the "
            "column's publisher republished (relation syndicated).",
            "No syndicated copies in this period.",
        ),
        "<h2>How fast copies follow</h2>",
        _figure_html(
            lag_chart(data.copies),
            "lag",
            "One dot per copy: time from the item it was copied from to the copy. The "
            "orange bar is the pair's median.",
            "No syndicated copies in this period.",
        ),
    ]
    if data.copies:
        parts.append(
            _table(
                ("Source", "Copier", "Copies", "Median lag", "Fastest", "Slowest"),
                _pair_rows(data.copies),
                {2, 3, 4, 5},
            )
        )
    parts += [
        "<h2>Items and stories per day</h2>",
        _figure_html(
            daily_chart(data),
            "daily",
            "Items stored per day of publication; a new story is an item that is not a "
            "copy of an earlier one; a story with copies has later syndicated copies, "
            "versions or duplicates.",
            "No items in this period.",
        ),
        "<h2>Feeds' health</h2>",
        _figure_html(
            health_chart(data.feeds),
            "health",
            "Polls per feed in the period by outcome (not modified: the server answered "
            "304, nothing to parse).",
            "No polls in this period.",
        ),
        _table(
            (
                "Feed",
                "Publisher",
                "State",
                "Last poll",
                "HTTP",
                "Errors in a row",
                "Items",
                "Last error",
            ),
            [
                [
                    f.name,
                    f.publisher,
                    _feed_state(f),
                    format_time(f.last_polled_at) if f.last_polled_at else "-",
                    f.last_status if f.last_status is not None else "-",
                    f.error_count,
                    f.items,
                    f.last_error or "",
                ]
                for f in data.feeds
            ],
            {4, 5, 6},
        ),
        f"<footer>aggregator {_e(__version__)}, generated {_e(format_time(now))}.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(db_path: Path, output: Path, *, since: datetime | None, now: datetime) -> str:
    """Render the report for `db_path` into `output` (replaced atomically); a summary line."""
    data = report_data(db_path, since)
    document = render_report(data, now)
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=output.parent, prefix=f".{output.name}.", delete=False
        ) as handle:
            temporary = Path(handle.name)
            handle.write(document)
        # NamedTemporaryFile makes the file private; a report is for sharing.
        umask = os.umask(0)
        os.umask(umask)
        temporary.chmod(0o666 & ~umask)
        os.replace(temporary, output)
    except OSError as e:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise AggregatorError(f"cannot write {output}: {e.strerror or e}") from e
    return (
        f"{data.items} items, {data.stories} stories, {len(data.copies)} syndicated copies "
        f"between {len(data.publishers)} publishers, {len(data.feeds)} feeds"
    )
