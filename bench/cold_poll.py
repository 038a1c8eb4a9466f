"""Cold and warm polls, side by side with lemon24/reader, on feeds served from loopback.

    bench/cold_poll.py [--feeds 200] [--entries 50] [--runs 3]

Generates FEEDS feeds of ENTRIES entries (~400-word bodies; a quarter of the stories are
carried by two or three feeds, so our dedup stage has copies to link), serves them from
one ThreadingHTTPServer on 127.0.0.1, and times, alternating the two products:

  cold  `aggregator poll --all` into an empty database (a subprocess, start-up included)
        vs reader's `update_feeds(workers=8, scheduled=False)` into another (in-process);
  warm  the same databases polled again while the server answers 304 to validators (a),
        while it sends no validators and unchanged bodies (b), and after 2 new entries
        were added to every feed (c).

Needs the `bench` extra (`pip install -e '.[bench]'`: reader, sgmllib3k). Prints
entries/s for each, the ratio, our cold poll's CPU time per entry (the poll and its
worker processes, user + system), and a final line of figures (min/median/max of RUNS).
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

EXE = Path(sys.executable).parent / "aggregator"
WORKERS = 8


def sentence(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(12, 24))).capitalize() + "."


def generate(feeds: int, entries: int, seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ra", "ten", "vo", "su", "pel", "dri", "an", "or", "ex", "ul"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
                    for _ in range(6000)})  # fmt: skip
    start = datetime(2026, 11, 1, tzinfo=UTC)
    stories = []
    for n in range(feeds * entries * 3 // 4):
        paragraphs = ["<p>" + " ".join(sentence(rng, words) for _ in range(4)) + "</p>"
                      for _ in range(5)]  # fmt: skip
        stories.append((n, f"Story {n}: " + sentence(rng, words)[:60], "".join(paragraphs)))
    slots: list[list[tuple[int, str, str, datetime]]] = [[] for _ in range(feeds)]
    for n, title, body in stories:
        when = start + timedelta(minutes=n)
        carriers = [rng.randrange(feeds)]
        if rng.random() < 0.25:
            carriers += rng.sample(range(feeds), rng.randint(1, 2))
        for lag, feed in enumerate(dict.fromkeys(carriers)):
            if len(slots[feed]) < entries:
                slots[feed].append((n, title, body, when + timedelta(minutes=30 * lag)))
    documents = {}
    for feed, items in enumerate(slots):
        parts = [
            f"<item><title>{escape(title)}</title><link>https://s{feed}.example/{n}</link>"
            f'<guid isPermaLink="false">s{feed}-{n}</guid>'
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
            f"<description>{escape(body)}</description></item>"
            for n, title, body, when in items
        ]
        documents[f"/f{feed}.xml"] = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Site {feed}</title><link>https://s{feed}.example/</link>"
            f"<description>bench</description>{''.join(parts)}</channel></rss>"
        ).encode()
    return documents


def with_new_entries(documents: dict[str, bytes], count: int, seed: int = 11) -> dict[str, bytes]:
    """Each feed with `count` fresh entries on top (a changed body, new ETag)."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choice("aeioukltrsmnpd") for _ in range(rng.randint(3, 9)))
                    for _ in range(4000)})  # fmt: skip
    when = format_datetime(datetime(2026, 11, 20, tzinfo=UTC), usegmt=True)
    fresh = {}
    for path, document in documents.items():
        items = "".join(
            f"<item><title>New {path} {n}</title><link>https://new.example{path}/{n}</link>"
            f'<guid isPermaLink="false">new{path}-{n}</guid><pubDate>{when}</pubDate>'
            "<description>"
            + escape("<p>" + " ".join(sentence(rng, words) for _ in range(20)) + "</p>")
            + "</description></item>"
            for n in range(count)
        )
        head, tail = document.decode().split("<item>", 1)
        fresh[path] = (head + items + "<item>" + tail).encode()
    return fresh


class Server:
    def __init__(self, documents: dict[str, bytes]) -> None:
        self.documents = documents
        self.validators = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.documents.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
                if outer.validators and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                if outer.validators:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


CPU_SECONDS: list[float] = []  # ours, per run: the poll and its worker processes


def ours(config: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([str(EXE), "--config", str(config), "poll", "--all"], check=True,
                   capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


def theirs(db: Path, urls: list[str], add: bool) -> float:
    from reader import make_reader  # the peer; only this bench needs it

    reader = make_reader(str(db))
    try:
        if add:
            for url in urls:
                reader.add_feed(url, exist_ok=True)
        started = time.perf_counter()
        reader.update_feeds(workers=WORKERS, scheduled=False)
        return time.perf_counter() - started
    finally:
        reader.close()


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}/{statistics.median(values):.2f}/{max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import reader  # noqa: F401
    except ImportError:
        print("cold_poll: reader is not installed (pip install -e '.[bench]'); skipped")
        return 0
    documents = generate(args.feeds, args.entries)
    changed = with_new_entries(documents, 2)
    entries = sum(doc.count(b"<item>") for doc in documents.values())
    server = Server(documents)
    urls = [server.base + path for path in documents]
    cold_ours, cold_theirs, cold_cpu = [], [], []
    warm_a, warm_b, warm_c, warm_a_reader, warm_b_reader, warm_c_reader = ([] for _ in range(6))
    for run in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="cold-poll-"))
        try:
            config = tmp / "config.toml"
            config.write_text(
                f'[storage]\npath = "ours.db"\n[daemon]\nworkers = {WORKERS}\n'
                + "".join(
                    f'[[feeds]]\nname = "f{n}"\npublisher = "Site {n}"\nurl = "{url}"\n'
                    for n, url in enumerate(urls)
                ),
                encoding="utf-8",
            )
            # Alternate which product goes first, so neither always meets a warm cache.
            order = [("ours", config), ("reader", tmp / "reader.db")]
            if run % 2:
                order.reverse()
            for name, target in order:
                server.validators = True
                server.documents = documents
                if name == "ours":
                    cold_ours.append(ours(target))
                    cold_cpu.append(CPU_SECONDS[-1])
                    warm_a.append(ours(target))
                    server.validators = False
                    warm_b.append(ours(target))
                    server.validators = True
                    server.documents = changed
                    warm_c.append(ours(target))
                else:
                    cold_theirs.append(theirs(target, urls, add=True))
                    warm_a_reader.append(theirs(target, urls, add=False))
                    server.validators = False
                    warm_b_reader.append(theirs(target, urls, add=False))
                    server.validators = True
                    server.documents = changed
                    warm_c_reader.append(theirs(target, urls, add=False))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ours_rate = entries / statistics.median(cold_ours)
    their_rate = entries / statistics.median(cold_theirs)
    print(f"{args.feeds} feeds, {entries} entries, {args.runs} runs (min/median/max seconds)")
    cpu_ms = statistics.median(cold_cpu) / entries * 1000
    print(
        f"cold   ours {spread(cold_ours)}  ({ours_rate:.0f} entries/s, dedup included; "
        f"CPU {spread(cold_cpu)} s, {cpu_ms:.2f} ms per entry over all processes)"
    )
    print(f"cold   reader {spread(cold_theirs)}  ({their_rate:.0f} entries/s)")
    print(f"warm a (304)            ours {spread(warm_a)}  reader {spread(warm_a_reader)}")
    print(f"warm b (same bodies)    ours {spread(warm_b)}  reader {spread(warm_b_reader)}")
    print(f"warm c (2 new per feed) ours {spread(warm_c)}  reader {spread(warm_c_reader)}")
    print(
        f"cold_poll: feeds={args.feeds} entries={entries} ours_entries_per_s={ours_rate:.0f} "
        f"reader_entries_per_s={their_rate:.0f} ratio={ours_rate / their_rate:.2f} "
        f"ours_cpu_ms_per_entry={cpu_ms:.2f} "
        f"warm_a_s={statistics.median(warm_a):.2f} warm_b_s={statistics.median(warm_b):.2f} "
        f"warm_c_s={statistics.median(warm_c):.2f} "
        f"reader_warm_a_s={statistics.median(warm_a_reader):.2f} "
        f"reader_warm_b_s={statistics.median(warm_b_reader):.2f} "
        f"reader_warm_c_s={statistics.median(warm_c_reader):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
