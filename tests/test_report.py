"""`aggregator report`: one offline HTML file whose charts are drawn from the store."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the web extra is not installed")

from aggregator.report import health_chart, lag_chart, matrix_chart, render_report
from aggregator.store import Store
from aggregator.store.views import CopyLink, FeedHealth, ReportData, report_data
from tests.test_cli import EXE, REPO, assert_one_line_error, run

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "demo.db"
    result = subprocess.run(
        [EXE, "--db", str(db), "demo"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return db


def _figure(page: str, name: str) -> str:
    found = re.search(rf'<figure id="{name}" class="chart">(.*?)</figure>', page, re.S)
    assert found, f"no {name} chart"
    return found.group(1)


def _texts(svg: str) -> list[str]:
    return [html_text.strip() for html_text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def test_report_of_the_demo_has_four_labelled_charts(demo_db: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    # The demo's items are dated November 2026: an ISO --since keeps the test independent
    # of today's date.
    result = run(
        "--db", str(demo_db), "report", "--since", "2026-10-01", "--output", str(output),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {output}" in result.stdout
    page = output.read_text(encoding="utf-8")

    matrix = _figure(page, "matrix")
    texts = _texts(matrix)
    assert "Copier (published the copy)" in texts and "Source (published first)" in texts
    assert "Syndicated copies (count)" in texts
    assert {"Pipsight", "Tradevane", "Meridian Wire", "Tidewater Ledger"} <= set(texts)
    assert texts.count("2") >= 2 and "1" in texts  # the cells carry their counts
    assert "<image" in matrix  # the heatmap itself

    lag = _figure(page, "lag")
    texts = _texts(lag)
    assert "Lag from the original to the copy (minutes)" in texts
    assert any(t.startswith("Pipsight → Tradevane") and "(n=2)" in t for t in texts)
    assert len(re.findall(r"<use ", lag)) >= 6  # one marker per syndicated copy

    daily = _figure(page, "daily")
    assert "Count per day" in _texts(daily)
    assert any(t.startswith("Day published (UTC)") for t in _texts(daily))
    assert len(re.findall(r'<g id="patch_\d+">', daily)) > 20  # the bars

    health = _figure(page, "health")
    assert "Polls in the period (count)" in _texts(health)
    assert {"chainlantern", "tradevane", "figureline"} <= set(_texts(health))
    assert "not modified" in _texts(health)

    # Self-contained: nothing is fetched when the file is opened.
    # (Inside the SVGs, url(#...) and href="#..." point within the page; the heatmap's
    # pixels are a data: URI.)
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\((?!#)", page)
    assert re.findall(r'href="(?!#|data:)', page) == []
    assert not re.search(r'\ssrc="', page)


def test_report_since_narrows_the_period(demo_db: Path) -> None:
    everything = report_data(demo_db, None)
    later = report_data(demo_db, datetime(2026, 11, 10, tzinfo=UTC))
    assert len(later.copies) < len(everything.copies)
    assert {(c.source, c.copier) for c in later.copies} == {("Meridian Wire", "Kestrel Bay Review")}
    assert later.days[0].day >= date(2026, 11, 10)
    assert sum(d.items for d in later.days) == later.items


def test_report_of_an_empty_store_says_there_is_nothing(tmp_path: Path) -> None:
    Store.open(tmp_path / "empty.db").close()
    output = tmp_path / "empty.html"
    result = run(
        "--db", str(tmp_path / "empty.db"), "report", "--output", str(output), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    page = output.read_text(encoding="utf-8")
    assert "No syndicated copies in this period." in page
    assert "No items in this period." in page
    assert "<svg" not in page


def test_report_errors_are_one_line(demo_db: Path, tmp_path: Path) -> None:
    missing = run("--db", str(tmp_path / "no.db"), "report", "--output", "r.html", cwd=tmp_path)
    assert "no database at" in assert_one_line_error(missing, 1)
    unwritable = run(
        "--db", str(demo_db), "report", "--output", str(tmp_path / "no" / "r.html"), cwd=tmp_path
    )
    assert "cannot write" in assert_one_line_error(unwritable, 1)
    bad_since = run("--db", str(demo_db), "report", "--since", "soon", "--output", "r.html",
                    cwd=tmp_path)  # fmt: skip
    assert "--since" in assert_one_line_error(bad_since, 2)
    assert not (tmp_path / "r.html").exists()


def test_long_lags_are_drawn_in_hours_and_failing_feeds_flagged() -> None:
    copies = [CopyLink("Wire", "Outlet", seconds, 0.9) for seconds in (3600, 9 * 3600, 30 * 3600)]
    texts = _texts(lag_chart(copies) or "")
    assert "Lag from the original to the copy (hours)" in texts
    assert "Wire → Outlet  (n=3)" in texts
    assert matrix_chart([]) is None and lag_chart([]) is None

    feeds = [
        FeedHealth("up", "Up", True, 0, None, 200, NOW, 5, (("ok", 4), ("not_modified", 2))),
        FeedHealth("down", "Down", True, 3, "HTTP 503", 503, NOW, 0, (("http_error", 3),)),
    ]
    texts = _texts(health_chart(feeds) or "")
    assert "failing: 3 in a row" in texts
    assert {"ok", "not modified", "http error"} <= set(texts)


def test_render_report_escapes_what_feeds_wrote() -> None:
    hostile = '<script>alert("x")</script>'
    data = ReportData(
        since=None,
        first_published=None,
        last_published=None,
        items=0,
        stories=0,
        publishers=(),
        copies=(),
        days=(),
        feeds=(FeedHealth("f", hostile, True, 1, hostile, 500, None, 0, ()),),
    )
    page = render_report(data, NOW)
    assert "<script" not in page
    assert "&lt;script&gt;" in page
