"""Syndication detection through the real poll path: loopback feeds -> SQLite stories."""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator import backfill
from aggregator.backfill import run_import
from aggregator.config import settings_from_mapping
from aggregator.linker import rebuild
from aggregator.models import Settings, StoredItem
from aggregator.pipeline import poll
from aggregator.store import Store
from aggregator.store.queries import ItemFilter
from aggregator.text import line_fingerprint
from tests.feeds import NOW, make_settings, rfc822, rss

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "aggregator")

ARTICLE = [
    "Harrow Minerals said on Tuesday it would buy the Kelso copper project from Brantley "
    "Resources for 410 million dollars in cash and shares, adding a third mine to a "
    "portfolio it has been building since the metal began its rally last spring.",
    "The deal values Kelso at roughly 14 times next year's expected earnings, a premium "
    "that chief executive Dana Whitcombe defended on a call with analysts, saying the mine "
    "could lift group output by 38 per cent within two years of the acquisition closing.",
    "Brantley shareholders will receive 2.15 dollars a share, of which 60 per cent is paid "
    "in cash. The board has recommended the offer and holders of 31 per cent of the stock "
    "have already agreed to tender, the companies said in a joint statement.",
    "Analysts at Corvin Securities said the price looked full but noted that few large "
    "copper deposits remain available outside the biggest producers, leaving mid-sized "
    "miners such as Harrow to pay up for growth or stand still while rivals expand.",
    "Harrow shares fell 4.2 per cent in early trading while Brantley jumped 27 per cent. "
    "The transaction still needs approval from regulators in two countries and is "
    "expected to close in the second quarter, the statement said.",
]
CHROME_TOP = ["Source: DepositPhotos", "Updated 2 hours ago", "Author Harrow Daily"]
CHROME_BOTTOM = [
    "Related Articles",
    "Gold steadies as traders weigh central bank signals",
    "Author Pipwatch",
    "Disclaimer: the content above is general information only and not investment advice.",
]


def html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def serve(httpserver: HTTPServer, path: str, items: list[dict[str, str]]) -> str:
    httpserver.expect_request(path).respond_with_data(
        rss(items), content_type="application/rss+xml"
    )
    return httpserver.url_for(path)


def settings_for(tmp_path: Path, feeds: dict[str, str]) -> Settings:
    return make_settings(
        tmp_path,
        [
            {"name": name, "publisher": name.replace("-", " ").title(), "url": url}
            for name, url in feeds.items()
        ],
    )


def poll_names(store: Store, settings: Settings, *names: str) -> None:
    for _ in poll(store, settings, names=list(names), clock=lambda: NOW):
        pass


def by_feed(store: Store) -> dict[str, StoredItem]:
    return {item.feed: item for item in store.items(limit=None)}


def item(guid: str, body: list[str], minutes: int, title: str = "Harrow buys Kelso") -> dict:
    published = datetime(2026, 11, 24, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return {
        "guid": guid,
        "title": title,
        "link": f"https://{guid}.example/story",
        "date": rfc822(published),
        "body": html(body),
    }


@pytest.mark.parametrize("summary_first", [True, False], ids=["summary-first", "full-first"])
def test_summary_feed_and_full_text_feed_link_both_ways(
    httpserver: HTTPServer, tmp_path: Path, store: Store, summary_first: bool
) -> None:
    full = serve(httpserver, "/full", [item("harrow-daily", ARTICLE, 0)])
    summary = serve(httpserver, "/summary", [item("wire-digest", ARTICLE[:2], 30)])
    settings = settings_for(tmp_path, {"harrow-daily": full, "wire-digest": summary})

    order = ["wire-digest", "harrow-daily"] if summary_first else ["harrow-daily", "wire-digest"]
    for name in order:
        poll_names(store, settings, name)

    items = by_feed(store)
    original, copy = items["harrow-daily"], items["wire-digest"]
    assert original.story_id == original.id and original.parent_id is None
    assert original.relation == "original"
    assert (copy.story_id, copy.parent_id, copy.relation) == (
        original.id,
        original.id,
        "syndicated",
    )
    assert copy.containment is not None and copy.containment >= 0.95
    assert copy.lag_seconds == 30 * 60


def test_chrome_copy_credits_the_original_and_chain_of_syndication_keeps_its_order(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    first_copy = [*CHROME_TOP, ARTICLE[0], *CHROME_BOTTOM[:3], *ARTICLE[1:4], CHROME_BOTTOM[3]]
    # The second syndicator copied the first copy, keeping its trims and chrome lines.
    second_copy = [f"Via Tradevane: {first_copy[3]}", *first_copy[4:]]
    feeds = {
        "harrow-daily": serve(httpserver, "/o", [item("o", ARTICLE, 0)]),
        "tradevane": serve(httpserver, "/a", [item("a", first_copy, 45)]),
        "feedvault": serve(httpserver, "/b", [item("b", second_copy, 120)]),
    }
    settings = settings_for(tmp_path, feeds)
    # Arrival order is the reverse of publication: the chain must still come out right.
    poll_names(store, settings, "feedvault")
    poll_names(store, settings, "tradevane")
    poll_names(store, settings, "harrow-daily")

    items = by_feed(store)
    original, first, second = items["harrow-daily"], items["tradevane"], items["feedvault"]
    assert {i.story_id for i in items.values()} == {original.id}
    assert original.parent_id is None
    assert first.parent_id == original.id
    assert second.parent_id == first.id
    assert [first.relation, second.relation] == ["syndicated", "syndicated"]


def test_same_event_and_templated_reports_are_not_linked(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    template = (
        "{co} reported third-quarter earnings per share of {eps} dollars against an "
        "analyst estimate of {est} dollars, on revenue of {rev} billion dollars compared "
        "with {rev_est} billion expected. {co} said it expects full-year revenue between "
        "{low} and {high} billion dollars and will pay a quarterly dividend of {div} cents."
    )
    reports = [
        dict(co="Norvale Systems", eps="1.42", est="1.35", rev="4.8", rev_est="4.7",
             low="18.9", high="19.3", div="21"),
        dict(co="Norvale Systems", eps="1.51", est="1.44", rev="5.1", rev_est="5.0",
             low="19.6", high="20.1", div="22"),
        dict(co="Corvid Health", eps="3.11", est="3.02", rev="11.4", rev_est="11.2",
             low="44.0", high="45.5", div="80"),
    ]  # fmt: skip
    items = [
        item(f"r{n}", [template.format(**r), template.format(**r)], n * 90, title=f"Q{n}")
        for n, r in enumerate(reports)
    ]
    feeds = {"figureline": serve(httpserver, "/t", items)}
    settings = settings_for(tmp_path, feeds)
    poll_names(store, settings, "figureline")
    stored = store.items(limit=None)
    assert len(stored) == 3
    assert all(i.story_id == i.id and i.relation == "original" for i in stored)


def test_a_new_process_links_new_copies_to_stories_stored_before(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    original = serve(httpserver, "/o", [item("o", ARTICLE, 0)])
    copy = serve(httpserver, "/c", [item("c", [*CHROME_TOP, *ARTICLE, *CHROME_BOTTOM], 50)])
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "agg.db"\n\n'
        f'[[feeds]]\nname = "harrow-daily"\npublisher = "Harrow Daily"\nurl = "{original}"\n\n'
        f'[[feeds]]\nname = "tradevane"\npublisher = "Tradevane"\nurl = "{copy}"\n',
        encoding="utf-8",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "--config", str(config), *args], capture_output=True, text=True, timeout=60
        )

    assert cli("poll", "--feed", "harrow-daily").returncode == 0
    second = cli("poll", "--feed", "tradevane")
    assert second.returncode == 0, second.stderr
    items = {i["feed"]: i for i in json.loads(cli("items", "--json", "--limit", "0").stdout)}
    original_item, copy_item = items["harrow-daily"], items["tradevane"]
    assert original_item["story_id"] == original_item["id"]
    assert original_item["parent_id"] is None
    assert copy_item["story_id"] == original_item["id"]
    assert copy_item["parent_id"] == original_item["id"]
    assert copy_item["relation"] == "syndicated"
    assert copy_item["method"] == "attribution"

    shown = cli("show", str(copy_item["id"]))
    assert shown.returncode == 0
    lines = shown.stdout.split("Story ", 1)[1].splitlines()
    root_line = next(n for n, line in enumerate(lines) if f"[{original_item['id']}]" in line)
    copy_line = next(n for n, line in enumerate(lines) if f"[{copy_item['id']}]" in line)
    assert root_line < copy_line and "└─" in lines[copy_line] and "+50m" in lines[copy_line]

    stories = json.loads(cli("stories", "--json").stdout)
    assert [(s["story_id"], s["copies"]) for s in stories] == [(original_item["id"], 1)]
    originals = json.loads(cli("items", "--originals", "--json").stdout)
    assert [i["id"] for i in originals] == [original_item["id"]]


def test_changed_dedup_parameters_are_detected_and_rebuild_relinks(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    original = serve(httpserver, "/o", [item("o", ARTICLE, 0)])
    copy = serve(httpserver, "/c", [item("c", ARTICLE[:3], 20)])
    base = (
        '[storage]\npath = "agg.db"\n\n{dedup}'
        f'[[feeds]]\nname = "one"\npublisher = "One"\nurl = "{original}"\n\n'
        f'[[feeds]]\nname = "two"\npublisher = "Two"\nurl = "{copy}"\n'
    )
    config = tmp_path / "config.toml"
    config.write_text(base.format(dedup=""), encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "--config", str(config), *args], capture_output=True, text=True, timeout=60
        )

    assert cli("poll", "--feed", "one").returncode == 0
    config.write_text(base.format(dedup="[dedup]\nnum_perm = 64\n\n"), encoding="utf-8")
    refused = cli("poll", "--feed", "two")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "dedup --rebuild" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    rebuilt = cli("dedup", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert cli("poll", "--feed", "two").returncode == 0
    items = {i["feed"]: i for i in json.loads(cli("items", "--json").stdout)}
    assert items["two"]["parent_id"] == items["one"]["id"]


def test_labelled_set_meets_precision_and_recall_targets() -> None:
    labels = REPO / "tests" / "data" / "labelled.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "eval_dedup.py"), str(labels), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["items"] >= 60 and not metrics["missing"]
    assert metrics["precision"] >= 0.98, metrics["false_links"]
    assert metrics["recall"] >= 0.95, metrics["misses"]
    # Templated reports (p7 singles), same-event write-ups (p6) and paraphrases (p8): no link.
    wrongly_linked = [
        pair
        for pair in metrics["false_links"]
        if any(str(part).startswith(("p6-", "p7-", "p8-")) for part in json.dumps(pair).split('"'))
    ]
    assert wrongly_linked == []


def test_a_link_to_a_followed_publishers_site_decides_the_parent(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # Two earlier carriers of the same text; the late copy links to one publisher's site.
    site_a = "<link>https://www.harrow-daily.example/</link>"
    site_b = "<link>https://tradevane.example/</link>"
    a = rss([item("a", ARTICLE, 0)]).replace(b"<link>https://news.example/</link>", site_a.encode())
    b = rss([item("b", ARTICLE, 5)]).replace(b"<link>https://news.example/</link>", site_b.encode())
    httpserver.expect_request("/a").respond_with_data(a)
    httpserver.expect_request("/b").respond_with_data(b)
    credit = '<p>Read the original at <a href="https://markets.harrow-daily.example/x">HD</a></p>'
    late = item("c", [*ARTICLE], 60)
    late["body"] += credit
    feeds = {
        "harrow-daily": httpserver.url_for("/a"),
        "tradevane": httpserver.url_for("/b"),
        "feedvault": serve(httpserver, "/c", [late]),
    }
    settings = settings_for(tmp_path, feeds)
    poll_names(store, settings, "harrow-daily", "tradevane")
    poll_names(store, settings, "feedvault")
    items = by_feed(store)
    assert items["feedvault"].parent_id == items["harrow-daily"].id
    assert items["feedvault"].method == "attribution"


def labelled_archive(labels: list[dict[str, str]]) -> list[str]:
    """The labelled set as import lines, dated up to yesterday.

    Undated items are imported as published now: the dated ones move up to
    yesterday, so that "now" stays inside their stories' window whatever the date.
    """
    dates = {
        label["id"]: datetime.fromisoformat(label["published"].replace("Z", "+00:00"))
        for label in labels
        if label.get("published")
    }
    shift = datetime.now(UTC) - timedelta(days=1) - max(dates.values())
    return [
        json.dumps(
            {
                "id": label["id"],
                "title": label["title"],
                "url": label["url"],
                "published": (dates[label["id"]] + shift).isoformat()
                if label["id"] in dates
                else None,
                "publisher": label["site"],
                "text": label["text"],
            }
        )
        for label in labels
    ]


def test_import_backfills_links_and_resumes(tmp_path: Path) -> None:
    labels = json.loads((REPO / "tests" / "data" / "labelled.json").read_text(encoding="utf-8"))
    archive = tmp_path / "archive.jsonl"
    lines = labelled_archive(labels)
    archive.write_text("\n".join([*lines, "{not json", '{"title": "no publisher"}']) + "\n")
    db = tmp_path / "agg.db"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "--db", str(db), *args], capture_output=True, text=True, timeout=120
        )

    first = cli("import", str(archive))
    assert first.returncode == 0, first.stderr
    assert f"{len(labels)} new items" in first.stdout and "2 skipped" in first.stdout
    assert "line" in first.stderr
    again = cli("import", str(archive))
    assert "0 new items" in again.stdout and f"{len(labels)} already stored" in again.stdout

    items = json.loads(cli("items", "--json", "--limit", "0").stdout)
    group = {label["url"]: label["group"] for label in labels}
    false_links = misses = 0
    for a, b in itertools.combinations(items, 2):
        same, linked = group[a["url"]] == group[b["url"]], a["story_id"] == b["story_id"]
        false_links += linked and not same
        misses += same and not linked
    assert (false_links, misses) == (0, 0)


def test_import_skips_lines_that_are_not_utf8_and_reads_a_byte_order_mark(
    tmp_path: Path,
) -> None:
    def line(n: int, title: str) -> bytes:
        record = {
            "title": title,
            "url": f"https://wire.example/{n}",
            "publisher": "Wire",
            "published": "2026-11-02T10:00:00Z",
            "text": f"Story {n} " + "word " * 40,
        }
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"  # fmt: skip

    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(
        b"\xef\xbb\xbf" + line(1, "Caf\u00e9 opens")
        + line(2, "Caf\u00e9 closes").replace("\u00e9".encode(), "\u00e9".encode("latin-1"))
        + line(3, "Third")
    )  # fmt: skip
    done = subprocess.run(
        [EXE, "--db", str(tmp_path / "agg.db"), "import", str(archive)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 new items" in done.stdout and "1 skipped" in done.stdout
    assert "line 2: not UTF-8 (byte 0xe9 at column" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_import_passes_over_a_line_too_long_to_be_an_article(tmp_path: Path) -> None:
    def line(n: int) -> str:
        record = {
            "title": f"Story {n}",
            "url": f"https://wire.example/{n}",
            "publisher": "Wire",
            "published": "2026-11-02T10:00:00Z",
            "text": f"Story {n} " + "word " * 40,
        }
        return json.dumps(record)  # fmt: skip

    # A whole archive as one JSON array on one line: 17 MiB.
    archive_as_array = json.dumps([json.loads(line(n)) for n in range(70_000)])
    assert len(archive_as_array) > backfill.MAX_LINE_BYTES
    archive = tmp_path / "archive.jsonl"
    archive.write_text(f"{line(1)}\n{archive_as_array}\n{line(2)}\n", encoding="utf-8")
    done = subprocess.run(
        [EXE, "--db", str(tmp_path / "agg.db"), "import", str(archive)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 lines: 2 new items") and "1 skipped" in done.stdout
    assert "line 2: longer than 16 MiB" in done.stderr


def test_lines_longer_than_the_limit_are_read_past(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill, "MAX_LINE_BYTES", 8)
    text = b"12345678\n123456789\n\nabc\n" + b"x" * 40 + b"\nlast"
    assert list(backfill._lines(io.BytesIO(text))) == [
        b"12345678\n", None, b"\n", b"abc\n", None, b"last"
    ]  # fmt: skip
    assert list(backfill._lines(io.BytesIO(b"y" * 30))) == [None]


def test_import_weighs_pairs_in_worker_processes_and_links_as_the_writer_alone(
    tmp_path: Path,
) -> None:
    # Small batches, so that the workers weigh one batch's pairs while the writer
    # stores the batch before: the links must be those of a writer weighing alone.
    labels = json.loads((REPO / "tests" / "data" / "labelled.json").read_text(encoding="utf-8"))
    archive = tmp_path / "archive.jsonl"
    archive.write_text("\n".join(labelled_archive(labels)) + "\n")
    outcome = {}
    for processes, learn in itertools.product((1, 2), (True, False)):
        db = tmp_path / f"agg{processes}{learn}.db"
        # Without learned boilerplate, nothing changes between guess and linking.
        dedup = {} if learn else {"boilerplate_min_items": 10_000}
        settings = settings_from_mapping(
            {"storage": {"path": str(db)}, "daemon": {"processes": processes}, "dedup": dedup},
            source=None,
            base_dir=tmp_path,
        )
        with Store.open(db) as store:
            result = run_import(store, settings, archive, now=datetime.now(UTC), batch=8)
            items = store.items(limit=None)
        url = {i.id: i.url for i in items}
        links = {
            i.url: (url[i.story_id], url.get(i.parent_id), i.relation, i.similarity, i.method)
            for i in items
        }
        outcome[processes, learn] = (links, result.links, result.weighings)
    for learn in (True, False):
        alone, together = outcome[1, learn], outcome[2, learn]
        assert together[:2] == alone[:2]
        assert sum(alone[1].values()) == len(labels) and alone[1]["original"] < len(labels)
        assert alone[2]["ahead"] == 0 and alone[2]["here"] > 0
        assert together[2].total() == alone[2].total()
    # A guess goes wrong only where a feed's learned boilerplate changed between the
    # guess and the linking: in this small set, often; without learning, never.
    assert outcome[2, True][2]["ahead"] > 0
    assert outcome[2, False][2]["here"] == 0


def test_ctrl_c_stops_an_import_with_one_line_and_no_worker_tracebacks(tmp_path: Path) -> None:
    # Large enough that worker processes are digesting and weighing when Ctrl-C comes.
    words = [f"w{n}" for n in range(2000)]
    rng = random.Random(7)
    when = datetime.now(UTC) - timedelta(days=1)
    archive = tmp_path / "archive.jsonl"
    archive.write_text(
        "\n".join(
            json.dumps(
                {
                    "title": f"Report {n}",
                    "url": f"https://desk{n % 7}.example/{n}",
                    "published": (when + timedelta(seconds=n)).isoformat(),
                    "publisher": f"Desk {n % 7}",
                    "text": " ".join(rng.choices(words, k=150)),
                }
            )
            for n in range(30_000)
        )
        + "\n"
    )
    process = subprocess.Popen(
        [EXE, "--db", str(tmp_path / "agg.db"), "import", str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As from a terminal: a shell without job control starts background commands
        # (a test run among them) with SIGINT ignored, and Python keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(3)
    # To the whole group, as a terminal sends it.
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    # The progress label, then one line: nothing from the worker processes.
    assert "Traceback" not in stderr and "Error" not in stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"


OTHER = [
    "Quillmarket Analytics said on Wednesday that stablecoin settlement volumes on three "
    "regional exchanges doubled in October, as market makers moved collateral away from "
    "slower bank transfers ahead of the quarter-end funding squeeze.",
    "The firm counted 41 billion dollars of transfers across the venues, up from 19 billion "
    "a month earlier, with most of the growth concentrated in the final week of the month.",
]


def test_a_related_blurb_near_the_top_of_a_page_does_not_link_the_other_story(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # The syndicator's page: headline, a Related Articles block quoting another story's
    # opening, then the copied article.
    page = ["Related Articles", OTHER[0], "Author Quillmarket", *ARTICLE, *CHROME_BOTTOM[3:]]
    feeds = {
        "harrow-daily": serve(httpserver, "/o", [item("o", ARTICLE, 0)]),
        "quillmarket": serve(
            httpserver, "/q", [item("q", OTHER[:1], 10, title="Stablecoin settlement doubles")]
        ),
        "tradevane": serve(httpserver, "/p", [item("p", page, 60)]),
    }
    settings = settings_for(tmp_path, feeds)
    poll_names(store, settings, "harrow-daily", "quillmarket")
    poll_names(store, settings, "tradevane")
    items = by_feed(store)
    assert items["tradevane"].parent_id == items["harrow-daily"].id
    assert items["quillmarket"].story_id == items["quillmarket"].id
    assert items["quillmarket"].story_size == 1


def test_a_short_wire_sent_again_under_a_reworded_headline_is_linked_by_its_symbol(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # Too short to weigh by overlap: identical bodies link only under the same headline,
    # or headlines naming the same instrument. Another company's identical report, or
    # two markets' identical price notes, stay apart.
    dividend = ["Qtly div 12 cts vs 12 cts prior", "Pay Dec 15", "Record Dec One"]
    hogs = ["Hog prices opened 1.00 dlr higher, private sources said. Top 51.50 dlrs per cwt."]
    # Two feeds, so that no feed sees a line in three items and learns it as chrome.
    wire = serve(
        httpserver,
        "/wire.xml",
        [
            item("first", dividend, 0, "PELLAM MINING CORP (NYSE: PLM) SETS QUARTERLY"),
            item("again", dividend, 40, "PELLAM MINING CORP (NYSE: PLM) DECLARES QTLY DIV"),
            item("west", hogs, 70, "JOLIET HOGS UP 1.00 DLR - PRIVATE SOURCES"),
        ],
    )
    desk = serve(
        httpserver,
        "/desk.xml",
        [
            item("other", dividend, 60, "KESTREL FOODS INC (NYSE: KSF) REGULAR DIVIDEND"),
            item("east", hogs, 75, "ST JOSEPH HOGS OPEN UP 1.00 DLR - PRIVATE"),
        ],
    )
    settings = settings_for(tmp_path, {"wire": wire, "desk": desk})
    poll_names(store, settings, "wire", "desk")
    items = {(i.url or "").split("//")[1].split(".")[0]: i for i in store.items(limit=None)}
    assert items["again"].parent_id == items["first"].id
    assert items["again"].relation == "duplicate"
    assert items["other"].story_id == items["other"].id
    assert items["east"].story_id == items["east"].id
    assert items["west"].story_id == items["west"].id


def test_import_reads_titles_as_plain_text_so_a_wire_symbol_survives(tmp_path: Path) -> None:
    # "<PLM>" in an archived wire headline is the company's symbol, not a tag: it must
    # survive the import, where it tells a resent wire from another company's report.
    when = datetime.now(UTC) - timedelta(days=1)
    body = "Qtly div 12 cts vs 12 cts prior\nPay Dec 15\nRecord Dec One"
    # Two publishers, so that no pseudo-feed sees the lines in three items (its chrome).
    records = [
        ("1", "PELLAM MINING CORP <PLM> SETS QUARTERLY", 0, "Wire"),
        ("2", "PELLAM MINING CORP <PLM> DECLARES QTLY DIV", 40, "Wire"),
        ("3", "KESTREL FOODS INC <KSF> REGULAR DIVIDEND", 60, "Desk"),
    ]
    archive = tmp_path / "wire.jsonl"
    archive.write_text(
        "".join(
            json.dumps(
                {
                    "id": key,
                    "title": title,
                    "url": f"https://wire.example/{key}",
                    "published": (when + timedelta(minutes=minutes)).isoformat(),
                    "publisher": publisher,
                    "text": body,
                }
            )
            + "\n"
            for key, title, minutes, publisher in records
        )
    )
    db = tmp_path / "agg.db"
    done = subprocess.run(
        [EXE, "--db", str(db), "import", str(archive)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(
        [EXE, "--db", str(db), "items", "--json", "--limit", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    items = {item["url"][-1]: item for item in json.loads(listing.stdout)}
    assert "PLM" in items["1"]["title"] and "KSF" in items["3"]["title"]
    assert items["2"]["story_id"] == items["1"]["story_id"]
    assert items["3"]["story_id"] not in (items["1"]["story_id"], items["2"]["story_id"])


def test_rebuild_recomputes_tickers_of_stored_items(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    # A rebuild places stored items again: their ticker rows are replaced, not added to.
    body = ["Shares of Pellam Mining (NYSE: PLM) rose 4 per cent after the copper find."]
    url = serve(httpserver, "/desk.xml", [item("desk", body, 0, "Pellam Mining rises")])
    settings = settings_for(tmp_path, {"desk": url})
    poll_names(store, settings, "desk")
    (stored,) = store.items(limit=None)
    assert stored.tickers == ("PLM",)
    with store.transaction():
        store.set_tickers(stored.id, ("PLM", "STALE"))  # as an older extractor left them
    assert store.items(limit=None)[0].tickers == ("PLM", "STALE")
    rebuild(store, settings, since=None)
    (again,) = store.items(limit=None)
    assert again.tickers == ("PLM",)


def test_each_link_keeps_its_verdict_score_and_items_filter_by_it(
    httpserver: HTTPServer, tmp_path: Path, store: Store
) -> None:
    feeds = {
        "harrow-daily": serve(httpserver, "/o", [item("o", ARTICLE, 0)]),
        "pipwatch": serve(
            httpserver, "/c", [item("c", [*CHROME_TOP, *ARTICLE, *CHROME_BOTTOM], 40)]
        ),
    }
    settings = settings_for(tmp_path, feeds)
    poll_names(store, settings, "harrow-daily", "pipwatch")
    items = by_feed(store)
    original, copy = items["harrow-daily"], items["pipwatch"]
    assert copy.parent_id == original.id
    assert original.score is None
    assert copy.score is not None and 0.5 < copy.score <= 1.0

    def listed(min_score: float) -> set[str]:
        return {i.feed for i in store.filtered_items(ItemFilter(min_score=min_score), None)}

    assert listed(copy.score) == {"harrow-daily", "pipwatch"}
    # Above the copy's score only the original is left.
    assert listed(min(1.0, copy.score + 0.001)) == {"harrow-daily"}

    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{settings.db_path}"\n', encoding="utf-8")
    store.close()
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "items",
            "--json",
            "--min-score",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [r["feed"] for r in records] == ["harrow-daily"]
    assert records[0]["score"] is None
    refused = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "items", "--min-score", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


DISCLAIMER = "Disclaimer: the content above is general information only and not investment advice."
STORY_B = [
    "Dock workers at the port of Halden ended a nine-day strike on Friday after the "
    "operator agreed to raise wages by 6 per cent over two years and hire 140 more staff.",
    "Shipping lines had diverted more than 30 vessels to neighbouring ports during the "
    "stoppage, and a backlog of containers is expected to take a fortnight to clear.",
]


@pytest.mark.parametrize("polls", [1, 5], ids=["one-poll", "a-poll-per-item"])
def test_boilerplate_learning_keeps_a_storys_own_paragraphs(
    httpserver: HTTPServer, tmp_path: Path, store: Store, polls: int
) -> None:
    # A small feed carrying three takes of one story, each with one paragraph of its
    # own, and two other stories; all five end with the site's disclaimer.
    takes = [
        item(f"take{n}", [*ARTICLE, f"Update {n}: shares closed {n} cents up.", DISCLAIMER], n)
        for n in range(3)
    ]
    others = [
        item("other-a", [*OTHER, DISCLAIMER], 10, title="Stablecoin settlement doubles"),
        item("other-b", [*STORY_B, DISCLAIMER], 20, title="Port strike ends"),
    ]
    entries = [*takes, *others]
    copy = serve(httpserver, "/p", [item("copy", [*CHROME_TOP, *ARTICLE], 60)])
    settings = settings_for(tmp_path, {"harrow-daily": httpserver.url_for("/h"), "pipwatch": copy})
    batches = [entries] if polls == 1 else [entries[: n + 1] for n in range(len(entries))]
    for batch in batches:
        httpserver.clear_assertions()
        httpserver.expect_oneshot_request("/h").respond_with_data(
            rss(batch), content_type="application/rss+xml"
        )
        poll_names(store, settings, "harrow-daily")
    poll_names(store, settings, "pipwatch")
    feed = next(f for f in store.feeds(in_config_only=False) if f.name == "harrow-daily")
    learned = store.boilerplate(
        feed.id, settings.dedup.boilerplate_min_items, settings.dedup.boilerplate_min_share
    )
    assert line_fingerprint(DISCLAIMER) in learned
    assert not {line_fingerprint(p) for p in ARTICLE} & learned
    # So the story is still there to link: the syndicator's copy joins it.
    items = {i.entry_key: i for i in store.items(limit=None)}
    assert items["copy"].story_id == items["take0"].story_id
