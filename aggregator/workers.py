"""The CPU-bound stages, run on every core: parse and sign.

SQLite has one writer, and linking must see the store as it is, so those stay
on the writer thread. What an item's text turns into (its paragraphs'
fingerprints, its kept paragraphs and shingles, its two signatures, tickers,
credits and linked hosts) depends only on the text and on its feed's learned
boilerplate, so it can be worked out beforehand in other processes while the
writer stores earlier feeds.

A digest is made against the feed's boilerplate as it stood at dispatch. The
linker uses it only when the boilerplate it sees at linking time removes the
same paragraphs of that item; otherwise it digests the item again itself, so
the result never depends on whether a digest was used.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.dedup.features import compare
from aggregator.dedup.index import Signature, Signer, band_keys, band_layout, load_library
from aggregator.dedup.prepare import prepare_body, signing_view
from aggregator.errors import ParseError
from aggregator.interrupts import ignore_sigint, sigint_held
from aggregator.models import HASH_PREFIX, Comparison, DedupSettings, ParsedFeed, Shipped
from aggregator.parse import parse_feed
from aggregator.text import (
    credited_publishers,
    extract_tickers,
    link_hosts,
)

log = logging.getLogger(__name__)

# Below this many feeds in one poll, starting worker processes (~0.3 s of CPU each,
# mostly imports) costs more than they save: see docs/design.md, "What runs where".
MIN_FEEDS_FOR_PROCESSES = 8


@dataclass(frozen=True, slots=True)
class ItemDigest(Shipped):
    """What linking needs of one item's text, worked out away from the writer."""

    # Fingerprints of all the item's paragraphs, boilerplate or not.
    line_keys: frozenset[str]
    # Those of line_keys that were boilerplate when the digest was made.
    removed: frozenset[str]
    # The kept paragraphs, one a line (what signatures.text stores), and the prepared
    # body's shingle and figure counts. Not the prepared body itself (~180 KB): most
    # items have no candidate, and the writer prepares the few that do.
    kept_text: str
    shingle_count: int
    figure_count: int
    signature: Signature
    # Where the index files it (dedup.band_keys), so the writer need not hash it.
    band_keys: bytes
    tickers: tuple[str, ...]
    credits: frozenset[str]
    # Hosts the item's HTML links to: "read the original at ..." credits.
    link_hosts: frozenset[str] = frozenset()

    def valid_for(self, boilerplate: frozenset[str]) -> bool:
        return self.line_keys & boilerplate == self.removed


@dataclass(frozen=True, slots=True)
class FeedDigest(Shipped):
    parsed: ParsedFeed | None
    parse_error: str | None
    # By entry key.
    items: Mapping[str, ItemDigest] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _signer(settings: DedupSettings) -> Signer:
    return Signer(settings)


def digest_text(
    title: str,
    text: str,
    boilerplate: frozenset[str],
    settings: DedupSettings,
    publishers: tuple[str, ...],
    html: str = "",
) -> ItemDigest:
    view = signing_view(
        text,
        boilerplate,
        shingle_size=settings.shingle_size,
        lead_words=settings.lead_words,
        signed_shingle_size=settings.signed_shingle_size,
    )
    signature = _signer(settings).sign(view.signed, view.lead_shingles)
    kept_text = "\n".join(view.lines)
    return ItemDigest(
        line_keys=view.paragraph_keys,
        removed=view.paragraph_keys & boilerplate,
        kept_text=kept_text,
        shingle_count=view.shingle_count,
        figure_count=view.figure_count,
        signature=signature,
        band_keys=band_keys(signature, band_layout(settings)),
        # From the body without the feed's boilerplate: a site-wide "market snapshot"
        # line would otherwise tag every story with the same tickers.
        tickers=extract_tickers(title, kept_text),
        credits=credited_publishers(f"{title}\n{text}", publishers),
        link_hosts=link_hosts(html),
    )


@dataclass(frozen=True, slots=True)
class Context(Shipped):
    """What digests of one feed's texts depend on besides the texts themselves."""

    # The feed's learned boilerplate when the work was handed out.
    boilerplate: frozenset[str]
    settings: DedupSettings
    # Every publisher a credit line may name.
    publishers: tuple[str, ...]
    # Content-hash prefixes of the feed's last document: entries already stored.
    known: frozenset[str] = frozenset()

    def digest(self, title: str, text: str, html: str = "") -> ItemDigest:
        return digest_text(title, text, self.boilerplate, self.settings, self.publishers, html)


def digest_texts(texts: Sequence[tuple[str, str, str]], context: Context) -> list[ItemDigest]:
    """Digests of (title, text, html) triples of one feed."""
    return [context.digest(title, text, html) for title, text, html in texts]


def digest_body(
    body: bytes, url: str, content_type: str | None, now: datetime, context: Context
) -> FeedDigest:
    """Parse a fetched feed document and digest each entry's text.

    Entries whose content hash starts with one of `context.known` are stored already
    and are not digested: the writer will find them unchanged.
    """
    try:
        parsed = parse_feed(body, url=url, now=now, content_type=content_type)
    except ParseError as e:
        return FeedDigest(None, str(e))
    items = {
        entry.key: context.digest(entry.title, entry.body_text, entry.html)
        for entry in parsed.entries
        if entry.content_hash[:HASH_PREFIX] not in context.known
    }
    return FeedDigest(parsed, None, items)


# A new item and a candidate, each as the linker prepares it: (text, its feed's
# boilerplate). The linker's key for a weighing made beforehand.
Pair = tuple[str, frozenset[str], str, frozenset[str]]
# compare() of the two prepared texts, and the smaller one's shingle count.
Weighed = tuple[Comparison, int]


def weigh_pairs(pairs: Sequence[Pair], settings: DedupSettings) -> list[Weighed]:
    """What Linker._matches works out for each pair when nothing was weighed beforehand."""
    weighed = []
    for text, boilerplate, other, other_boilerplate in pairs:
        mine = prepare_body(
            text, boilerplate, shingle_size=settings.shingle_size, lead_words=settings.lead_words
        )
        theirs = prepare_body(
            other,
            other_boilerplate,
            shingle_size=settings.shingle_size,
            lead_words=settings.lead_words,
        )
        weighed.append(
            (
                compare(mine, theirs, settings.shingle_size),
                min(len(mine.shingles), len(theirs.shingles)),
            )
        )
    return weighed


def _die_with_parent(parent: int) -> None:
    """Run in each worker: end soon after the process that started it, even by SIGKILL.

    A worker holds both ends of its task queue, so it never sees the parent's end
    close; without this, a killed daemon would leave its workers behind. (Not
    PR_SET_PDEATHSIG: that follows the thread that spawned the worker, which may
    be a short-lived fetch thread.)

    Ctrl-C reaches the whole process group: the parent answers it (stops, says
    "interrupted", shuts the pool down), so a worker ignores it rather than print
    a traceback from the middle of a job.
    """
    ignore_sigint()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


class Digester:
    """Runs digests in worker processes, or on the calling thread with `processes=1`.

    Thread-safe: fetch threads hand their bodies over as they arrive. The pool
    starts on first use; a worker that dies (out of memory, killed) costs only
    the digest it was making, which is then made on the calling thread.
    """

    def __init__(self, processes: int, *, fork: bool = False) -> None:
        self.processes = processes if processes > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        # May the first pool be forked from this process? See start().
        self._fork = fork and "fork" in multiprocessing.get_all_start_methods()

    def start(self, *, will_sign: bool = True) -> None:
        """Start the worker processes now.

        With `fork=True` and no other thread running, they are forked: they begin
        with every module already imported, which saves each ~0.4 s of CPU (for
        two, 5% of a 200-feed poll's CPU). A process that has threads (the
        daemon, a test) gets spawned workers instead: a fork copies other
        threads' locks in whatever state they are. `will_sign` says whether
        signing is certain (a feed never fetched before): then the signing
        library is imported first, once for all workers.
        """
        self._executor(will_sign=will_sign)

    def __enter__(self) -> Digester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def parallel(self) -> bool:
        return self.processes > 1

    def _executor(self, *, will_sign: bool = True) -> ProcessPoolExecutor | None:
        """The pool, started on first use; `will_sign`: its first jobs sign texts."""
        if not self.parallel:
            return None
        with self._lock:
            if self._pool is None and not self._closed:
                # spawn unless this process is alone: a forked child inherits whatever
                # locks other threads held then. Not forkserver: its server outlives a
                # SIGKILLed parent. A pool started again after a failure is spawned.
                fork = self._fork and threading.active_count() == 1
                self._fork = False
                with sigint_held():
                    if fork and will_sign:
                        # Imported once here rather than by each forked worker.
                        load_library()
                    pool = self._pool = ProcessPoolExecutor(
                        self.processes,
                        mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                        initializer=_die_with_parent,
                        initargs=(os.getpid(),),
                    )
                    # One job per process starts them all now, from this thread (a
                    # forking pool starts all at its first job; a spawning one starts
                    # one per job while none is idle), before its manager thread exists.
                    try:
                        for started in [pool.submit(os.getpid) for _ in range(self.processes)]:
                            started.result()
                    except (BrokenProcessPool, RuntimeError) as e:
                        log.warning("worker processes failed to start (%s); working here", e)
                        self._pool = None
                        pool.shutdown(wait=False, cancel_futures=True)
            return self._pool

    def feed(
        self, body: bytes, url: str, content_type: str | None, now: datetime, context: Context
    ) -> FeedDigest:
        """Parse and digest one fetched document (called from fetch threads)."""
        job = functools.partial(digest_body, body, url, content_type, now, context)
        pool = self._executor()
        if pool is not None:
            try:
                return pool.submit(job).result()
            except (BrokenProcessPool, RuntimeError) as e:
                log.warning("worker process failed (%s); digesting %s here instead", e, url)
                self._reset()
        return job()

    def texts_later(
        self, texts: Sequence[tuple[str, str, str]], context: Context
    ) -> Callable[[], list[ItemDigest]]:
        """Start digesting (title, text, html) triples now; the returned call waits for them.

        Lets the writer link one batch while the workers digest the next.
        """
        here = functools.partial(digest_texts, texts, context)
        pool = self._executor()
        if pool is None or not texts:
            return here
        size = -(-len(texts) // self.processes)
        try:
            futures = [
                pool.submit(digest_texts, texts[i : i + size], context)
                for i in range(0, len(texts), size)
            ]
        except (BrokenProcessPool, RuntimeError) as e:
            log.warning("worker process failed (%s); digesting here instead", e)
            self._reset()
            return here

        def wait() -> list[ItemDigest]:
            try:
                return [digest for future in futures for digest in future.result()]
            except (BrokenProcessPool, RuntimeError) as e:
                log.warning("worker process failed (%s); digesting here instead", e)
                self._reset()
                return here()

        return wait

    def weigh_later(
        self, pairs: Sequence[Pair], settings: DedupSettings
    ) -> Callable[[], dict[Pair, Weighed]]:
        """Start weighing `pairs` in the workers; the returned call waits for them.

        A pair that cannot be weighed there (no workers, a worker lost) is left
        out: the linker weighs what it does not find itself.
        """
        pool = self._executor()
        if pool is None or not pairs:
            return dict
        # A new item's pairs stay together, so each worker prepares its text once.
        size = -(-len(pairs) // self.processes)
        chunks = []
        start = 0
        while start < len(pairs):
            end = min(start + size, len(pairs))
            while end < len(pairs) and pairs[end][0] == pairs[end - 1][0]:
                end += 1
            chunks.append(pairs[start:end])
            start = end
        try:
            futures = [(chunk, pool.submit(weigh_pairs, chunk, settings)) for chunk in chunks]
        except (BrokenProcessPool, RuntimeError) as e:
            log.warning("worker process failed (%s); weighing on the writer instead", e)
            self._reset()
            return dict

        def wait() -> dict[Pair, Weighed]:
            weighed: dict[Pair, Weighed] = {}
            for chunk, future in futures:
                try:
                    weighed.update(zip(chunk, future.result(), strict=True))
                except (BrokenProcessPool, RuntimeError) as e:
                    log.warning("worker process failed (%s); weighing on the writer instead", e)
                    self._reset()
                    break
            return weighed

        return wait

    def texts(self, texts: Sequence[tuple[str, str, str]], context: Context) -> list[ItemDigest]:
        """Digests of (title, text, html) triples, split across the workers."""
        return self.texts_later(texts, context)()

    def _reset(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
