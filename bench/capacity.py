"""Capacity: how many feeds one daemon keeps fresh, on loopback, with realistic churn.

    bench/capacity.py [--feeds 1000] [--hosts 50] [--time-factor 10] [--cycles 2]
                      [--churn 0.05] [--seed 1] [--keep DIR]

Serves N feeds from H loopback host names (127.0.0.2 ... : distinct addresses, so the
daemon's per-host limit applies as it would across real publishers), writes a config
listing them with a 15-minute interval divided by the time factor (10: 90 s), starts
`aggregator run` as a subprocess, lets it run for the first burst (every feed due at
once) plus `--cycles` intervals, and stops it with SIGTERM.

Each request of a feed answers 304 to its current ETag, except that with probability
`--churn` per request the feed gains 1-3 entries first (a new ETag, a 200 with its
last 20 entries); a third of new entries carry the body of another feed's recent story
inside the publisher's own chrome, so the dedup stage links copies as in life.

It prints, from the daemon's own fetch log (`fetches`) and /proc:
- polls per second over the intervals after the first burst, against the rate the
  schedule asks (feeds / interval; each feed's own cycle is its interval stretched by
  its fixed jitter, plus its fetch, so a daemon that keeps up polls a little less);
- lateness, p50 and p95: a poll's start minus when it was due (the previous poll's
  start plus its fetch time plus the feed's interval with its fixed jitter), over the
  polls after the first burst, in the bench's compressed seconds;
- the daemon's CPU share of the whole box (all cores) after the first burst, and its
  peak RSS (VmHWM, with its worker processes' peaks).
The time factor makes the schedule F times denser than life: 1,000 feeds at F=10 ask as
many polls per second as 10,000 at 15 minutes do. Exits 0 when the run worked; the
figures are reported, not enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aggregator.schedule import JITTER_SHARE, feed_jitter

REAL_INTERVAL = 15 * 60.0
WORDS = [f"w{n}" for n in range(3000)]


@dataclass
class FeedState:
    publisher: str
    version: int = 0
    entries: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    body: bytes = b""


class Feeds:
    """Every feed's current document, changed by requests as churn says."""

    def __init__(self, count: int, churn: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.churn = churn
        self.lock = threading.Lock()
        self.feeds = [FeedState(publisher=f"Publisher {n}") for n in range(count)]
        self.recent: list[str] = []
        self.requests = 0
        self.changed = 0
        for n in range(count):
            self._grow(n, 3)

    def _story(self) -> str:
        rng = self.rng
        return "\n".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 45))) + "."
            for _ in range(rng.randint(4, 7))
        )

    def _grow(self, n: int, new: int) -> None:
        feed = self.feeds[n]
        for _ in range(new):
            feed.version += 1
            if self.recent and self.rng.random() < 1 / 3:
                # Another feed's story in this publisher's chrome.
                text = f"Source: {feed.publisher}\n{self.rng.choice(self.recent)}\nRelated Articles"
            else:
                text = self._story()
                self.recent = [*self.recent[-199:], text]
            guid = f"f{n}-{feed.version}"
            feed.entries = [
                *feed.entries[-19:],
                (guid, f"Story {guid}", text, datetime.now(UTC)),
            ]
        feed.body = _rss(n, feed)

    def answer(self, n: int, etag: str | None) -> tuple[int, bytes, str]:
        with self.lock:
            self.requests += 1
            if self.rng.random() < self.churn:
                self.changed += 1
                self._grow(n, self.rng.randint(1, 3))
            feed = self.feeds[n]
            current = f'"v{feed.version}"'
            if etag == current:
                return 304, b"", current
            return 200, feed.body, current


def _rss(n: int, feed: FeedState) -> bytes:
    items = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://p{n}.example/{guid}</link>"
        f"<pubDate>{format_datetime(when)}</pubDate>"
        f"<description><![CDATA[{''.join(f'<p>{p}</p>' for p in text.splitlines())}]]>"
        "</description></item>"
        for guid, title, text, when in reversed(feed.entries)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{feed.publisher}</title>'
        f"<link>https://p{n}.example/</link>{items}</channel></rss>"
    ).encode()


def serve(feeds: Feeds, hosts: int) -> list[ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                n = int(self.path.strip("/").removeprefix("f"))
                status, body, etag = feeds.answer(n, self.headers.get("If-None-Match"))
            except (ValueError, IndexError):
                self.send_error(404)
                return
            self.send_response(status)
            self.send_header("ETag", etag)
            if status == 200:
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    servers = []
    for h in range(hosts):
        server = ThreadingHTTPServer((f"127.0.0.{h + 2}", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def write_config(
    path: Path, servers: list[ThreadingHTTPServer], count: int, interval: float
) -> None:
    lines = [
        "[storage]",
        'path = "agg.db"',
        "[polling]",
        f'interval = "{interval:g}s"',
        'timeout = "10s"',
        "[daemon]",
        'tick = "1s"',
        'shutdown_timeout = "10s"',
    ]
    for n in range(count):
        host, port = servers[n % len(servers)].server_address[:2]
        lines += [
            "[[feeds]]",
            f'name = "f{n}"',
            f'publisher = "Publisher {n}"',
            f'url = "http://{host}:{port}/f{n}"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[k]) for k in (11, 12, 13, 14)) / ticks


def tree_cpu(pid: int) -> float:
    total = 0.0
    for child in [pid, *children(pid)]:
        with contextlib.suppress(OSError, IndexError):
            total += cpu_seconds(child)
    return total


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found]


def peak_rss_mb(pid: int) -> float:
    peak = 0.0
    for one in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
        except OSError:
            pass
    return peak


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def analyse(
    db: Path, interval: float, after: datetime, until: datetime
) -> tuple[int, list[float], int]:
    """Polls started between `after` and `until`, their lateness, and errors among them."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT feeds.name, fetches.started_at, fetches.duration, fetches.outcome "
            "FROM fetches JOIN feeds ON feeds.id = fetches.feed_id "
            "ORDER BY fetches.feed_id, fetches.started_at"
        ).fetchall()
    late: list[float] = []
    polls = errors = 0
    previous: dict[str, tuple[datetime, float]] = {}
    for name, started, duration, outcome in rows:
        when = datetime.fromisoformat(started.replace("Z", "+00:00"))
        if name in previous and after < when <= until:
            polls += 1
            errors += outcome not in ("ok", "not_modified")
            begun, took = previous[name]
            due = begun + timedelta(
                seconds=float(took or 0.0) + interval * (1 + JITTER_SHARE * feed_jitter(name))
            )
            late.append((when - due).total_seconds())
        previous[name] = (when, duration)
    return polls, late, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--time-factor", type=float, default=10.0)
    parser.add_argument("--cycles", type=float, default=2.0)
    parser.add_argument("--churn", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the config, log and database here")
    args = parser.parse_args()
    interval = REAL_INTERVAL / args.time_factor
    feeds = Feeds(args.feeds, args.churn, args.seed)
    servers = serve(feeds, args.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "config.toml"
        write_config(config, servers, args.feeds, interval)
        log = work / "daemon.log"
        exe = Path(sys.executable).with_name("aggregator")
        started = datetime.now(UTC)
        with open(log, "wb") as sink:
            daemon = subprocess.Popen(
                [str(exe), "--config", str(config), "run"], cwd=work, stdout=sink, stderr=sink
            )
        try:
            # The first burst: every feed is due at once.
            burst_end = None
            deadline = time.monotonic() + interval * 3
            while time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(1)
                db = work / "agg.db"
                if not db.exists():
                    continue
                with sqlite3.connect(db) as conn:
                    try:
                        polled = conn.execute(
                            "SELECT COUNT(DISTINCT feed_id) FROM fetches"
                        ).fetchone()[0]
                    except sqlite3.Error:
                        continue
                if polled >= args.feeds:
                    burst_end = datetime.now(UTC)
                    break
            if burst_end is None:
                burst_end = datetime.now(UTC)
                print(f"capacity: the first burst did not finish within {interval * 3:.0f}s")
            first_burst = (burst_end - started).total_seconds()
            cpu_before, wall_before = tree_cpu(daemon.pid), time.monotonic()
            time.sleep(interval * args.cycles)
            cpu_after, wall_after = tree_cpu(daemon.pid), time.monotonic()
            window_end = datetime.now(UTC)
            rss = peak_rss_mb(daemon.pid)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
        for server in servers:
            server.shutdown()
        polls, late, errors = analyse(work / "agg.db", interval, burst_end, window_end)
        window = wall_after - wall_before
        cores = os.cpu_count() or 1
        cpu_share = (cpu_after - cpu_before) / window / cores if window else float("nan")
        asked = args.feeds / interval
        rate = polls / window if window else float("nan")
        tracebacks = log.read_text(errors="replace").count("Traceback")
        print(
            f"{args.feeds} feeds on {args.hosts} hosts, interval {interval:g}s (15 min / "
            f"{args.time_factor:g}), churn {args.churn:g}: first burst {first_burst:.1f}s; "
            f"then {polls} polls in {window:.0f}s"
        )
        print(
            f"polls/s {rate:.1f} sustained (the schedule asks {asked:.1f}); lateness p50 "
            f"{percentile(late, 0.5):.1f}s p95 {percentile(late, 0.95):.1f}s; CPU "
            f"{cpu_share:.0%} of {cores} cores; peak RSS {rss:.0f} MB; errors {errors}; "
            f"server requests {feeds.requests}, changed {feeds.changed}; daemon exit {code}, "
            f"tracebacks {tracebacks}"
        )
        print(
            f"capacity: feeds={args.feeds} hosts={args.hosts} time_factor={args.time_factor:g} "
            f"first_burst_s={first_burst:.1f} polls_per_s={rate:.1f} asked_per_s={asked:.1f} "
            f"lateness_p50_s={percentile(late, 0.5):.1f} "
            f"lateness_p95_s={percentile(late, 0.95):.1f} cpu_share={cpu_share:.2f} "
            f"peak_rss_mb={rss:.0f} errors={errors} exit={code}"
        )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
