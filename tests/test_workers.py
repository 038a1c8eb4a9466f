"""Worker processes: the same stories whether texts are digested there or on the writer."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aggregator import workers
from aggregator.models import DedupSettings, Settings
from aggregator.pipeline import poll
from aggregator.store import Store
from aggregator.workers import (
    MIN_FEEDS_FOR_PROCESSES,
    Context,
    Digester,
    digest_body,
    digest_text,
    weigh_pairs,
)
from tests.feeds import NOW, make_settings, rfc822, rss

REPO = Path(__file__).resolve().parents[1]

STORY = [
    "Marlow Freight said on Monday it agreed to buy the Ostend container terminal from "
    "Pelham Ports for 720 million euros, its largest purchase since the company listed.",
    "The price is about 11 times the terminal's operating profit, chief executive Ana Reyes "
    "told analysts, adding that volumes there rose 14 per cent in the first nine months.",
    "Pelham will keep a 20 per cent stake and a seat on the terminal's board for three "
    "years, and the deal is expected to close in the first quarter after approval.",
    "Shares in Marlow rose 3.1 per cent in Amsterdam while Pelham gained 6.4 per cent, "
    "giving the two companies a combined market value of about 9 billion euros.",
]
CHROME = [
    "Source: DepositPhotos",
    "Disclaimer: the content above is general information only and not investment advice.",
    "Related Articles",
]


def story(n: int) -> list[str]:
    """A distinct story per n: the same shape with other names and figures."""
    return [
        paragraph.replace("Marlow", f"Marlow{n}x")
        .replace("Ostend", f"Ostend{n}y")
        .replace("720", str(700 + n))
        .replace("Monday", ["Monday", "Tuesday", "Friday"][n % 3])
        + f" Filing {n} of {n * 7}."
        for paragraph in STORY
    ]


def html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def entry(feed: int, n: int, body: list[str], minutes: int) -> dict[str, str]:
    return {
        "guid": f"f{feed}-{n}",
        "title": f"Marlow{n}x buys Ostend{n}y terminal",
        "link": f"https://site{feed}.example/{n}",
        "date": rfc822(datetime(2026, 11, 24, 6, 0, tzinfo=UTC) + timedelta(minutes=minutes)),
        "body": html(body),
    }


def documents(round_: int) -> dict[str, list[dict[str, str]]]:
    """10 feeds: publishers of originals, and syndicators that wrap copies in chrome."""
    feeds: dict[str, list[dict[str, str]]] = {}
    for feed in range(10):
        items = []
        for n in range(4):
            number = round_ * 100 + feed * 4 + n
            items.append(entry(feed, number, story(number), number))
            if feed >= 6:
                # A syndicator's copy of another feed's story, with its own chrome.
                source = round_ * 100 + (feed - 6) * 4 + n
                items.append(entry(feed, 1000 + source, [*story(source), *CHROME], source + 40))
        feeds[f"feed-{feed}"] = items
    return feeds


def settings_for(tmp_path: Path, httpserver: HTTPServer, processes: int) -> Settings:
    feeds = [
        {"name": name, "publisher": name.title(), "url": httpserver.url_for(f"/{name}")}
        for name in documents(0)
    ]
    settings = make_settings(tmp_path, feeds)
    return replace(settings, daemon=replace(settings.daemon, processes=processes))


def serve(httpserver: HTTPServer, round_: int) -> None:
    httpserver.clear()
    for name in documents(round_):
        body = rss([i for r in range(round_ + 1) for i in documents(r)[name]])
        httpserver.expect_request(f"/{name}").respond_with_data(
            body, content_type="application/rss+xml"
        )


def chains(store: Store) -> dict[str, tuple[object, ...]]:
    items = {i.id: i for i in store.items(limit=None)}
    key = {i.id: f"{i.feed}/{i.entry_key}" for i in items.values()}
    return {
        key[i.id]: (
            key[i.story_id] if i.story_id else None,
            key[i.parent_id] if i.parent_id else None,
            i.relation,
            i.similarity,
            i.tickers,
        )
        for i in items.values()
    }


def run_rounds(tmp_path: Path, httpserver: HTTPServer, processes: int) -> dict[str, tuple]:
    settings = settings_for(tmp_path, httpserver, processes)
    with Store.open(settings.db_path) as store:
        # Round 1 lets the syndicators' chrome become learned boilerplate, so round 2's
        # digests are made against it; round 3 tests a stale boilerplate snapshot.
        for round_ in range(3):
            serve(httpserver, round_)
            for report in poll(store, settings, everything=True, clock=lambda: NOW):
                assert report.error is None, report
        return chains(store)


def test_worker_processes_give_the_same_stories_as_the_writer_alone(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    assert len(documents(0)) >= MIN_FEEDS_FOR_PROCESSES
    alone = run_rounds(tmp_path / "alone", httpserver, processes=1)
    parallel = run_rounds(tmp_path / "parallel", httpserver, processes=2)
    assert parallel == alone
    copies = [key for key, (_, parent, *_) in alone.items() if parent is not None]
    # Every syndicator copy found its original, in all three rounds.
    assert len(copies) == 4 * 4 * 3


def test_a_digest_made_against_other_boilerplate_is_not_used() -> None:
    settings = DedupSettings()
    text = "\n".join([*STORY, *CHROME])
    digest = digest_text("Marlow buys Ostend", text, frozenset(), settings, ())
    assert digest.valid_for(frozenset())
    chrome_key = next(
        key
        for key in digest.line_keys
        if key not in digest_text("t", "\n".join(STORY), frozenset(), settings, ()).line_keys
    )
    assert not digest.valid_for(frozenset({chrome_key}))
    # Boilerplate of lines the item does not have changes nothing for it.
    assert digest.valid_for(frozenset({"0123456789abcdef"}))


def test_what_workers_send_arrives_whole() -> None:
    # Shipped records are pickled as constructor arguments in slot order: a field
    # that is not an __init__ argument, or out of order, would land in the wrong place.
    paragraphs = "".join(f"<p>{line}</p>" for line in STORY)
    body = rss(
        [
            {"guid": f"g{n}", "title": f"Story {n}", "body": paragraphs, "date": rfc822(NOW)}
            for n in range(3)
        ]
    )
    context = Context(frozenset({"0123456789abcdef"}), DedupSettings(), ("Marlow Wire",))
    digest = digest_body(body, "https://example.com/feed", "application/rss+xml", NOW, context)
    assert digest.parsed is not None and len(digest.items) == 3
    for record in (digest, context, *digest.parsed.entries, *digest.items.values()):
        copy = pickle.loads(pickle.dumps(record))
        assert copy == record and type(copy) is type(record)
        for name in record.__slots__:
            assert getattr(copy, name) == getattr(record, name)


def test_a_killed_worker_costs_nothing_but_time() -> None:
    settings = DedupSettings()
    texts = [
        ("Marlow buys Ostend", "\n".join(story(n)), f'<a href="https://s{n}.example/">')
        for n in range(6)
    ]
    expected = [digest_text(t, x, frozenset(), settings, (), h) for t, x, h in texts]
    assert expected[1].link_hosts == {"s1.example"}
    with Digester(2) as digester:
        assert digester.texts(texts, Context(frozenset(), settings, ())) == (expected)
        pool = digester._pool
        assert pool is not None
        for pid in list(pool._processes):  # the pool's own worker pids: no public accessor
            os.kill(pid, signal.SIGKILL)
        again = digester.texts(texts, Context(frozenset(), settings, ()))
        assert again == expected


def test_pairs_are_weighed_as_the_writer_weighs_them_and_a_killed_worker_drops_them() -> None:
    settings = DedupSettings()
    chrome = digest_text("t", "\n".join(CHROME), frozenset(), settings, ()).line_keys
    texts = ["\n".join(story(n)) for n in range(4)]
    pairs = [
        (texts[0], frozenset(), "\n".join([*story(0), *CHROME]), chrome),
        (texts[0], frozenset(), texts[1], frozenset()),
        (texts[2], chrome, texts[3], frozenset()),
    ]
    alone = dict(zip(pairs, weigh_pairs(pairs, settings), strict=True))
    # The chrome goes as the candidate's boilerplate: the same text as the new item.
    assert alone[pairs[0]][0].jaccard == 1.0 > alone[pairs[1]][0].containment
    with Digester(2) as digester:
        assert digester.weigh_later(pairs, settings)() == alone
        pool = digester._pool
        assert pool is not None
        waiting = digester.weigh_later(pairs * 50, settings)
        for pid in list(pool._processes):  # the pool's own worker pids: no public accessor
            os.kill(pid, signal.SIGKILL)
        # What was lost is left out, for the writer to weigh itself; the rest is right.
        weighed = waiting()
        assert all(alone[pair] == result for pair, result in weighed.items())
        assert digester.weigh_later(pairs, settings)() == alone
    # No workers: nothing is weighed ahead.
    assert Digester(1).weigh_later(pairs, settings)() == {}


def _ctrl_c_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_workers_leave_ctrl_c_to_their_parent() -> None:
    # A terminal's Ctrl-C reaches the whole process group; the parent answers it. The
    # parent's own handler is set here: a test run started in the background by a
    # shell without job control inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Digester(2, fork=True) as digester:
            pool = digester._executor()
            assert pool is not None
            assert all(pool.submit(_ctrl_c_ignored).result() for _ in range(4))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_workers_start_comes_after_and_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C in the middle of starting workers would land in a fork handler that only
    # prints it, in a worker not yet ignoring it, or in a C extension being loaded.
    # Held back, it arrives once the workers are up.
    started: list[bool] = []
    real_pool = workers.ProcessPoolExecutor

    def pool_started_under_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # time enough for a delivered signal to interrupt this
        started.append(True)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(workers, "ProcessPoolExecutor", pool_started_under_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        digester = Digester(2)
        with pytest.raises(KeyboardInterrupt):
            digester.start()
        assert started == [True]
        pool = digester._executor()
        assert pool is not None
        assert all(pool.submit(_ctrl_c_ignored).result() for _ in range(4))
        digester.close()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("processes", [0, 1, 3])
def test_processes_setting(processes: int) -> None:
    digester = Digester(processes)
    assert digester.processes == (processes or os.cpu_count() or 1)
    assert digester.parallel == (digester.processes > 1)
    digester.close()


CHILD = """
import sys, time
from aggregator.models import DedupSettings
from aggregator.workers import Context, Digester
if __name__ == "__main__":
    digester = Digester(2)
    digester.texts([("t", "some words here", "")] * 4, Context(frozenset(), DedupSettings(), ()))
    print(" ".join(str(pid) for pid in digester._pool._processes), flush=True)
    time.sleep(60)
"""


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_the_signing_library_is_imported_only_when_needed() -> None:
    # Importing datasketch loads scipy, 0.3 s of a process's start: a poll that meets
    # only 304s and commands that do not sign must not pay it.
    # Forked workers that will sign get it from their parent, imported once.
    probe = (
        "import sys, aggregator.cli, aggregator.pipeline\n"
        "from aggregator.workers import Digester\n"
        "assert 'datasketch' not in sys.modules, 'imported at start'\n"
        "with Digester(2, fork=True) as idle:\n"
        "    idle.start(will_sign=False)\n"
        "assert 'datasketch' not in sys.modules, 'imported for a pool that may not sign'\n"
        "from aggregator.models import DedupSettings\n"
        "from aggregator.workers import Context\n"
        "with Digester(2, fork=True) as lazy:\n"
        "    lazy.texts([('Gold', 'Gold rose.', '')], Context(frozenset(), DedupSettings(), ()))\n"
        "assert 'datasketch' in sys.modules, 'not imported before forking signers'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
