"""Links each new item to the story it belongs to: prepare -> sign -> candidates -> verdict.

Runs inside the transaction that stores a feed's items, so an item and its
place in a story commit together. The in-memory LSH index mirrors the
`signatures` table; additions made in a transaction that rolls back are
taken out again.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aggregator.dedup.features import compare, identical, is_correction, pair_features
from aggregator.dedup.index import CandidateIndex, best, hits_among, parameters
from aggregator.dedup.place import Match, place, relation
from aggregator.dedup.prepare import prepare_body
from aggregator.dedup.verdict import make_verdict
from aggregator.errors import AggregatorError
from aggregator.models import (
    ChangeStatus,
    Comparison,
    DedupSettings,
    EntryChange,
    Feed,
    ItemText,
    Link,
    Member,
    ParsedEntry,
    PreparedText,
    Relation,
    Settings,
)
from aggregator.store import Store
from aggregator.text import (
    extract_tickers,
    line_fingerprint,
    paragraphs,
    site_host,
    tokens,
)
from aggregator.workers import ItemDigest, Pair, Weighed, digest_text

log = logging.getLogger(__name__)

# Candidates compared per new item. Copies of one story share the most bands with
# each other, so the closest 64 are enough to place an item in its story; without a
# cap, a feed of 1,000 identical bodies costs 500,000 comparisons on the writer.
# See docs/design.md ("Candidates per item") for how often real text comes near it.
MAX_CANDIDATES = 64

# The index forgets items this long after they leave the window.
_PRUNE_EVERY = timedelta(hours=1)


class DedupParametersChanged(AggregatorError):
    """Stored signatures were made with other parameters than the configured ones."""


class Linker:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings.dedup
        self._verdict = make_verdict(settings.dedup)
        self._index: CandidateIndex | None = None
        self._pending: list[int] = []
        # Feeds' learned boilerplate as read in the open transaction.
        self._boilerplate: dict[int, frozenset[str]] = {}
        # Items whose story fields were written in the open transaction (see _place).
        self._rewritten: set[int] = set()
        # Pairs weighed beforehand in worker processes (see weigh_ahead).
        self._weighed: dict[Pair, Weighed] = {}
        # Pairs weighed by compare(): "ahead" (in workers, beforehand) or "here".
        self.weighings: Counter[str] = Counter()
        self._last_prune: datetime | None = None
        self._sites: dict[str, str] | None = None
        self._site_rows: list[tuple[str, str]] = []
        self._sites_stale = True
        self._hints = {feed.name: feed.syndicates for feed in settings.feeds}
        # Credits can name any publisher we follow, configured now or stored earlier.
        self._publishers = sorted(
            {feed.publisher for feed in settings.feeds}
            | {hint for feed in settings.feeds for hint in feed.syndicates}
            | {feed.publisher for feed in store.feeds(in_config_only=False)}
        )

    @property
    def indexed(self) -> int:
        return len(self._index) if self._index is not None else 0

    # -- the index ------------------------------------------------------------------

    def check_parameters(self, now: datetime) -> None:
        """Refuse to mix signatures made with different parameters (inside a transaction)."""
        current = parameters(self._settings)
        stored = self._store.dedup_params()
        if stored == current:
            return
        if stored is not None and self._store.signature_count():
            changed = ", ".join(
                f"{key} {stored.get(key)!r} -> {value!r}"
                for key, value in current.items()
                if stored.get(key) != value
            )
            raise DedupParametersChanged(
                f"dedup parameters changed since signatures were stored ({changed}); "
                "run `aggregator dedup --rebuild`"
            )
        self._store.set_dedup_params(current, now)

    def prime(self, start: datetime, end: datetime) -> None:
        """Start an index holding the stored signatures published in [start, end).

        For a rebuild, which replays items in publish order: pruning then follows
        the replayed items' times, starting from `end`.
        """
        index = CandidateIndex(self._settings)
        index.load(row for row in self._store.iter_signatures(start) if row[3] < end)
        self._index = index
        self._last_prune = end

    def _ensure_index(self, now: datetime) -> CandidateIndex:
        if self._index is None:
            self.check_parameters(now)
            index = CandidateIndex(self._settings)
            since = now - timedelta(seconds=self._settings.window)
            index.load(self._store.iter_signatures(since))
            self._index = index
            self._last_prune = now
            log.debug("dedup index loaded: %d items since %s", len(index), since)
        return self._index

    def _prune(self, now: datetime) -> None:
        if self._index is None or self._last_prune is None:
            return
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._index.prune(now - timedelta(seconds=self._settings.window) - timedelta(days=1))
        self._last_prune = now

    def rollback(self) -> None:
        """Forget index entries of a transaction that did not commit."""
        if self._index is not None:
            for item_id in self._pending:
                self._index.remove(item_id)
        self._pending.clear()
        self._boilerplate.clear()
        self._weighed.clear()
        self._rewritten.clear()

    def commit(self) -> None:
        self._pending.clear()
        self._boilerplate.clear()
        self._weighed.clear()
        self._rewritten.clear()

    # -- linking ------------------------------------------------------------------------

    @property
    def publishers(self) -> tuple[str, ...]:
        """Every publisher a credit line may name."""
        return tuple(self._publishers)

    def boilerplate_now(self, feed_id: int) -> frozenset[str]:
        """The feed's learned boilerplate as it stands, for digests made elsewhere."""
        return self._store.boilerplate(
            feed_id, self._settings.boilerplate_min_items, self._settings.boilerplate_min_share
        )

    def known_entries(self, feed_id: int) -> frozenset[str]:
        """Hash prefixes of the entries in the feed's last document, for digests made elsewhere."""
        return self._store.entry_hashes(feed_id)

    def link_changes(
        self,
        feed: Feed,
        changes: Sequence[EntryChange],
        now: datetime,
        digests: Mapping[str, ItemDigest] | None = None,
    ) -> Counter[str]:
        """Sign new and changed items of one poll; place new ones in their stories.

        `digests` (by entry key) are the items' texts worked out in advance.
        """
        wanted = [c for c in changes if c.status is not ChangeStatus.SAME]
        if not wanted:
            return Counter()
        items = [
            ItemText(
                item_id=c.item_id,
                title=c.entry.title,
                text=c.entry.body_text,
                canonical_url=c.entry.canonical_url,
                published=c.stored_published,
                first_seen=c.first_seen,
                html=c.entry.html,
            )
            for c in wanted
        ]
        fresh = {c.item_id for c in wanted if c.status is ChangeStatus.NEW}
        by_item = {}
        if digests:
            by_item = {c.item_id: digests[c.entry.key] for c in wanted if c.entry.key in digests}
        # Feeds learn their site's address as they are polled: look again each poll
        # (when an item links anywhere).
        self._sites_stale = True
        return self.link_items(
            feed, items, fresh, now, learn=True, digests=by_item, inserted=frozenset(fresh)
        )

    def link_items(
        self,
        feed: Feed,
        items: Sequence[ItemText],
        fresh: set[int],
        now: datetime,
        *,
        learn: bool,
        digests: Mapping[int, ItemDigest] | None = None,
        inserted: frozenset[int] = frozenset(),
    ) -> Counter[str]:
        """Sign `items` of `feed` and place those in `fresh` (inside a transaction).

        `inserted` are items whose rows this transaction created: nothing is stored
        for them yet (a rebuild places stored items again, with their tickers).
        """
        digests = digests or {}
        index = self._ensure_index(now)
        if learn:
            # Learn the feed's recurring lines from the whole batch first, so a new
            # feed's first poll already knows the chrome shared by its items.
            self._store.learn_lines(
                feed.id,
                [
                    digests[item.item_id].line_keys
                    if item.item_id in digests
                    else {line_fingerprint(line) for line in paragraphs(item.text)}
                    for item in items
                    if item.item_id in fresh
                ],
                # Read once: the cache holds it when this transaction read it already.
                self._boilerplate.get(feed.id) or self.boilerplate_now(feed.id),
            )
        # Feeds whose lines were just learned may have new boilerplate; the others'
        # stands as read earlier in this transaction.
        self._boilerplate.pop(feed.id, None)
        boilerplate = _Boilerplate(self._store, self._settings, self._boilerplate)
        # Items sharing an item's address are its candidates too: look them all up at once.
        with_url = self._store.items_with_urls(
            item.canonical_url for item in items if item.item_id in fresh and item.canonical_url
        )
        ordered = sorted(items, key=lambda i: (i.published, i.first_seen, i.item_id))
        ready: dict[int, ItemDigest] = {}
        for item in ordered:
            digest = digests.get(item.item_id)
            if digest is None or not digest.valid_for(boilerplate(feed.id)):
                digest = digest_text(
                    item.title,
                    item.text,
                    boilerplate(feed.id),
                    self._settings,
                    self.publishers,
                    item.html,
                )
            ready[item.item_id] = digest
        candidates = _Candidates(
            index, {i.item_id: ready[i.item_id].band_keys for i in ordered if i.item_id in fresh}
        )
        found: Counter[str] = Counter()
        for item in ordered:
            digest = ready[item.item_id]
            signature = digest.signature
            lazy = _Lazy(item.text, boilerplate(feed.id), self._prepare)
            self._store.set_tickers(item.item_id, digest.tickers, new=item.item_id in inserted)
            credits = digest.credits
            if digest.link_hosts:
                credits |= _linked_publishers(digest.link_hosts, self._sites_now(), feed.publisher)
            self._store.save_signature(
                item.item_id,
                item.published,
                signature.body,
                signature.lead,
                # Most items keep their whole body: the item row holds it already.
                None if digest.kept_text == item.text else digest.kept_text,
                digest.shingle_count,
                credits,
            )
            if item.item_id in fresh:
                member = Member(
                    id=item.item_id,
                    feed_id=feed.id,
                    publisher=feed.publisher,
                    published=item.published,
                    first_seen=item.first_seen,
                    title=item.title,
                    credits=credits,
                    story_id=item.item_id,
                )
                same_url = with_url.get(item.canonical_url or "", ())
                kind = self._place(
                    feed,
                    member,
                    item,
                    lazy,
                    digest,
                    candidates,
                    boilerplate,
                    same_url,
                    inserted=item.item_id in inserted,
                )
                found[kind] += 1
            index.add_keys(
                item.item_id, digest.band_keys, item.published, new=item.item_id in fresh
            )
            self._pending.append(item.item_id)
        self._prune(now)
        return found

    def use_weighed(self, weighed: Mapping[Pair, Weighed]) -> None:
        """Weighings made beforehand (weigh_ahead), used until the transaction ends."""
        self._weighed.update(weighed)

    def weigh_ahead(
        self,
        batch: Sequence[tuple[Feed, Sequence[ParsedEntry], Sequence[ItemDigest]]],
        before: Sequence[tuple[Feed, Sequence[ParsedEntry], Sequence[ItemDigest]]] = (),
    ) -> list[Pair]:
        """The pairs that linking `batch` will probably weigh, to be weighed elsewhere first.

        `batch` holds new entries with their digests, in the order they will be
        linked, after those of `before` (linked first, and not weighed here).
        Read-only: the candidates are found as _matches() will find them, against
        the index and the boilerplate as they stand now. A guess that turns out
        wrong (a feed learns new boilerplate meanwhile) costs only the work: a
        weighing is used only for exactly the texts and boilerplate it was made of.
        """
        index = self._index
        entries = [
            (feed, entry, digest)
            for feed, group, digests in (*before, *batch)
            for entry, digest in zip(group, digests, strict=True)
        ]
        first = sum(len(group) for _, group, _ in before)
        if len(entries) == first:
            return []
        keys = [digest.band_keys for _, _, digest in entries]
        mine = keys[first:]
        hits = (
            index.merged_hits(mine, MAX_CANDIDATES, ahead=True)
            if index
            else [Counter() for _ in mine]
        )
        # Entries of both batches rank as the newest, in the order they will be stored.
        newest = 1 << 62
        chosen: list[set[int]] = []
        among = hits_among(keys, MAX_CANDIDATES, first)
        for found, in_batch, band_keys in zip(hits, among, mine, strict=True):
            if index is not None:
                found.update(index.recent_hits(band_keys, MAX_CANDIDATES))
            found.update({newest + position: count for position, count in in_batch.items()})
            chosen.append(best(found, MAX_CANDIDATES))
        stored = self._store.members({c for ids in chosen for c in ids if c < newest})
        boilerplate = _Boilerplate(self._store, self._settings, {})
        window = timedelta(seconds=self._settings.window)
        pairs: list[Pair] = []
        for (feed, entry, digest), ids in zip(entries[first:], chosen, strict=True):
            for candidate in sorted(ids):
                if candidate >= newest:
                    other_feed, other_entry, other_digest = entries[candidate - newest]
                    feed_id, published = other_feed.id, other_entry.published
                    text = other_digest.kept_text
                elif candidate in stored:
                    other, text = stored[candidate]
                    feed_id, published = other.feed_id, other.published
                else:
                    continue
                if abs(published - entry.published) > window or text == digest.kept_text:
                    continue
                pairs.append((entry.body_text, boilerplate(feed.id), text, boilerplate(feed_id)))
        return pairs

    def _sites_now(self) -> dict[str, str]:
        if self._sites is None or self._sites_stale:
            self._sites_stale = False
            return self.refresh_sites()
        return self._sites

    def refresh_sites(self) -> dict[str, str]:
        """Host of each publisher's own site (a feed's <link>), where only one claims it."""
        rows = self._store.publisher_sites()
        if self._sites is not None and rows == self._site_rows:
            return self._sites
        self._site_rows = rows
        claims: dict[str, set[str]] = {}
        for publisher, site_url in rows:
            host = _site_host(site_url)
            if host:
                claims.setdefault(host, set()).add(publisher)
        self._sites = {host: next(iter(p)) for host, p in claims.items() if len(p) == 1}
        return self._sites

    def _prepare(self, text: str, boilerplate: frozenset[str]) -> PreparedText:
        return prepare_body(
            text,
            boilerplate,
            shingle_size=self._settings.shingle_size,
            lead_words=self._settings.lead_words,
        )

    def _matches(
        self,
        member: Member,
        item: ItemText,
        lazy: _Lazy,
        digest: ItemDigest,
        candidates_of: _Candidates,
        boilerplate: _Boilerplate,
        stored_at_url: Sequence[int],
    ) -> list[Match]:
        window = timedelta(seconds=self._settings.window)
        candidates = candidates_of(member.id)
        # Up to 20 others at the item's address (a republished page keeps its URL).
        same_url = set([other for other in stored_at_url if other != member.id][:20])
        candidates |= same_url
        candidates.discard(member.id)
        if not candidates:
            return []
        # What the candidates' stored texts are: the kept paragraphs they were signed from.
        kept_keys = digest.line_keys - digest.removed
        matches: list[Match] = []
        for other, text in self._store.members(candidates).values():
            if abs(other.published - member.published) > window and other.id not in same_url:
                continue
            if text == digest.kept_text and kept_keys.isdisjoint(boilerplate(other.feed_id)):
                # The same body once each feed's boilerplate is gone: nothing to prepare.
                comparison = identical(digest.shingle_count, digest.figure_count)
                shorter = digest.shingle_count
            else:
                their_boilerplate = boilerplate(other.feed_id)
                weighed = self._weighed.get(
                    (item.text, boilerplate(member.feed_id), text, their_boilerplate)
                )
                if weighed is None:
                    self.weighings["here"] += 1
                    prepared = lazy()
                    theirs = self._prepare(text, their_boilerplate)
                    comparison = compare(prepared, theirs, self._settings.shingle_size)
                    shorter = min(len(prepared.shingles), len(theirs.shingles))
                else:
                    self.weighings["ahead"] += 1
                    comparison, shorter = weighed
            same_publisher = other.publisher.casefold() == member.publisher.casefold()
            mine, theirs_title = tokens(member.title), tokens(other.title)
            features = pair_features(
                comparison,
                shorter,
                titles=(mine, theirs_title),
                same_instruments=shorter < self._settings.min_shingles
                and mine != theirs_title
                and same_instruments(member.title, other.title),
                same_url=other.id in same_url,
                same_publisher=same_publisher,
                correction=same_publisher
                and (is_correction(member.title) or is_correction(other.title)),
                lag_seconds=(member.published - other.published).total_seconds(),
                instruments=(_headline_tickers(member.title), _headline_tickers(other.title)),
            )
            decision = self._verdict.judge(features)
            if decision.copy:
                matches.append(Match(other, comparison, decision.score))
        return matches

    def _place(
        self,
        feed: Feed,
        member: Member,
        item: ItemText,
        lazy: _Lazy,
        digest: ItemDigest,
        candidates_of: _Candidates,
        boilerplate: _Boilerplate,
        stored_at_url: Sequence[int],
        *,
        inserted: bool,
    ) -> str:
        matches = self._matches(
            member, item, lazy, digest, candidates_of, boilerplate, stored_at_url
        )
        if not matches:
            # A row this transaction created holds exactly this link already, unless
            # another item's placement rewrote it: then it is written again.
            if not (inserted and member.id not in self._rewritten):
                self._set_link(_original(member.id))
            return Relation.ORIGINAL.value
        # The originals of the matched stories, read before anything moves.
        roots: dict[int, Member] = {}
        for match in matches:
            story_id = match.member.story_id or match.member.id
            if story_id not in roots:
                root = self._store.story_root(story_id)
                roots[story_id] = root if root is not None else match.member
        placement = place(member, matches, roots, self._hints.get(feed.name, ()))
        for story_id in placement.merged:
            self._move_story(story_id, placement.story)

        def text_of(other: Member) -> PreparedText:
            return lazy() if other.id == member.id else self._stored(other, boilerplate)

        kind = Relation.ORIGINAL
        for edge in placement.edges:
            if edge.parent is None:
                self._set_link(_original(edge.child.id, edge.method))
                continue
            comparison = edge.comparison
            if comparison is None:
                # The new item's own text first, as the verdict measures it.
                first, second = (
                    (edge.parent, edge.child)
                    if edge.parent.id == member.id
                    else (edge.child, edge.parent)
                )
                comparison = compare(text_of(first), text_of(second), self._settings.shingle_size)
            relation_of = relation(edge.child, edge.parent, comparison, self._settings)
            if edge.child.id == member.id:
                kind = relation_of
            self._set_link(
                _child(
                    edge.child,
                    edge.parent,
                    placement.story,
                    relation_of,
                    comparison,
                    edge.method,
                    edge.score,
                )
            )
        return kind.value

    def _set_link(self, link: Link) -> None:
        self._store.set_link(link)
        self._rewritten.add(link.item_id)

    def _move_story(self, old_story: int, new_story: int) -> None:
        self._store.move_story(old_story, new_story)
        # The story's items, among them its root, whose id the story bears.
        self._rewritten.add(old_story)

    def _stored(self, member: Member, boilerplate: _Boilerplate) -> PreparedText:
        stored = self._store.members([member.id]).get(member.id)
        return self._prepare(stored[1] if stored else "", boilerplate(member.feed_id))


class _Candidates:
    """The candidates of one call's new items: best() of their band_hits(), capped per band.

    The merged arrays are searched once for all the items (a search per item cost
    more in numpy's call overhead than in searching); items filed since are in the
    index's recent dict, asked item by item. A merge or removal in between makes the
    rest be searched again.
    """

    def __init__(self, index: CandidateIndex, band_keys: dict[int, bytes]) -> None:
        self._index = index
        self._band_keys = band_keys
        self._merged: dict[int, Counter[int]] = {}
        self._generation = -1

    def __call__(self, item_id: int) -> set[int]:
        index = self._index
        keys = self._band_keys[item_id]
        if index.generation != self._generation or item_id not in self._merged:
            ids = list(self._band_keys)
            rest = ids[ids.index(item_id) :]
            found = index.merged_hits([self._band_keys[i] for i in rest], MAX_CANDIDATES)
            self._merged = dict(zip(rest, found, strict=True))
            self._generation = index.generation
        hits = self._merged.pop(item_id)
        hits.update(index.recent_hits(keys, MAX_CANDIDATES))
        return best(hits, MAX_CANDIDATES)


class _Lazy:
    """An item's prepared body, made on first use: most items never need it."""

    def __init__(
        self,
        text: str,
        boilerplate: frozenset[str],
        prepare: Callable[[str, frozenset[str]], PreparedText],
    ) -> None:
        self._arguments = (text, boilerplate)
        self._prepare = prepare
        self._prepared: PreparedText | None = None

    def __call__(self) -> PreparedText:
        if self._prepared is None:
            self._prepared = self._prepare(*self._arguments)
        return self._prepared


class _Boilerplate:
    """Per-feed learned boilerplate, read once per transaction (the linker's cache)."""

    def __init__(
        self, store: Store, settings: DedupSettings, cache: dict[int, frozenset[str]]
    ) -> None:
        self._load: Callable[[int], frozenset[str]] = lambda feed_id: store.boilerplate(
            feed_id, settings.boilerplate_min_items, settings.boilerplate_min_share
        )
        self._cache = cache

    def __call__(self, feed_id: int) -> frozenset[str]:
        if feed_id not in self._cache:
            self._cache[feed_id] = self._load(feed_id)
        return self._cache[feed_id]


def _original(item_id: int, method: str | None = None) -> Link:
    return Link(item_id, item_id, None, Relation.ORIGINAL, None, None, None, method)


def _child(
    child: Member,
    parent: Member,
    story: int,
    kind: Relation,
    comparison: Comparison,
    method: str,
    score: float | None,
) -> Link:
    return Link(
        item_id=child.id,
        story_id=story,
        parent_id=parent.id,
        relation=kind,
        similarity=comparison.jaccard,
        containment=comparison.containment,
        lag_seconds=_lag(child, parent),
        method=method,
        score=score,
    )


# Each poll of a cold start learns one more feed's site: the hosts of the others are
# looked up again each time, for every feed (a thousand feeds, a million lookups).
_site_host = functools.lru_cache(maxsize=65_536)(site_host)


def _linked_publishers(hosts: frozenset[str], sites: dict[str, str], own: str) -> frozenset[str]:
    """Publishers whose site the item links to: "read the original at ..." credits."""
    found = set()
    for host in hosts:
        parts = host.split(".")
        for start in range(len(parts) - 1):
            publisher = sites.get(".".join(parts[start:]))
            if publisher is not None:
                found.add(publisher)
                break
    found.discard(own)
    return frozenset(found)


def _lag(child: Member, parent: Member) -> int:
    return int((child.published - parent.published).total_seconds())


def rebuild(
    store: Store,
    settings: Settings,
    *,
    since: datetime | None,
    progress: Callable[[int], None] = lambda done: None,
    batch: int = 500,
) -> Counter[str]:
    """Recompute signatures, boilerplate and story links of stored items, oldest first.

    Without `since` everything is rebuilt (needed after a parameter change);
    with it, only items published since then, linked against older ones.
    """
    linker = Linker(store, settings)
    current = parameters(settings.dedup)
    stored = store.dedup_params()
    if since is not None and stored is not None and stored != current:
        raise DedupParametersChanged(
            "dedup parameters changed: rebuild everything (run without --since)"
        )
    ids = store.item_ids_by_published(since)
    feeds = {feed.id: feed for feed in store.feeds(in_config_only=False)}
    with store.transaction():
        store.reset_links(since)
        if since is None:
            store.clear_signatures()
            store.forget_lines()
            for start in range(0, len(ids), batch):
                by_feed: dict[int, list[ItemText]] = {}
                for feed_id, item in store.item_texts(ids[start : start + batch]):
                    by_feed.setdefault(feed_id, []).append(item)
                for feed_id, items in by_feed.items():
                    store.learn_lines(
                        feed_id,
                        [{line_fingerprint(line) for line in paragraphs(i.text)} for i in items],
                        store.boilerplate(
                            feed_id,
                            settings.dedup.boilerplate_min_items,
                            settings.dedup.boilerplate_min_share,
                        ),
                    )
        store.set_dedup_params(current, datetime.now(UTC))
    if since is not None:
        linker.prime(since - timedelta(seconds=settings.dedup.window), since)
    else:
        linker.prime(datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))
    found: Counter[str] = Counter()
    done = 0
    for start in range(0, len(ids), batch):
        chunk = store.item_texts(ids[start : start + batch])
        try:
            with store.transaction():
                for feed_id, item in chunk:
                    found += linker.link_items(
                        feeds[feed_id], [item], {item.item_id}, item.published, learn=False
                    )
        except BaseException:
            linker.rollback()
            raise
        linker.commit()
        done += len(chunk)
        progress(done)
    return found


# One item's headline meets every candidate of a poll's batch.
@functools.lru_cache(maxsize=4096)
def _headline_tickers(title: str) -> frozenset[str]:
    return frozenset(extract_tickers(title, ""))


def same_instruments(title: str, other_title: str) -> bool:
    """Whether two headlines name the same instruments, and at least one.

    A wire sent again under a reworded headline ("... <TM> SETS QUARTERLY", then
    "... <TM> DECLARES QTLY DIV") keeps the company's symbol; another company's
    report from the same template does not.
    """
    mine = extract_tickers(title, "")
    return bool(mine) and mine == extract_tickers(other_title, "")
