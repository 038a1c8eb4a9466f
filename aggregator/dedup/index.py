"""MinHash signatures and the LSH candidate index. The only datasketch importer.

Two signatures per item: one of the whole prepared body and one of its lead
(the first words), so that a feed's summary finds the full text it was cut
from even when their Jaccard similarity as wholes is tiny. Signatures are
stored as raw uint32 hash values with the parameters that made them, so the
index can be rebuilt from the store after a restart.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
import xxhash

from aggregator.interrupts import sigint_held
from aggregator.models import DedupSettings, Shipped

if TYPE_CHECKING:
    from datasketch import MinHash

# datasketch is imported where it is first needed: importing it loads scipy (0.3 s of a
# process's start), which a poll that meets only 304s, and most commands, never use.


def load_library() -> None:
    """Import datasketch now: before forking processes that will sign.

    Its caller holds Ctrl-C back (interrupts.sigint_held) over this and the fork.
    """
    import datasketch  # noqa: F401


SCHEME = "affine32"
# xxh32 is ~3x faster than datasketch's default sha1_hash32 on short shingles, and the
# affine32 scheme pre-mixes its input, so the estimator is as good.
HASH_FUNCTION = "xxh32"


@dataclass(frozen=True, slots=True)
class Signature(Shipped):
    body: bytes
    lead: bytes


def parameters(settings: DedupSettings) -> dict[str, object]:
    """Everything that makes two signatures comparable; stored next to them."""
    return {
        "num_perm": settings.num_perm,
        "seed": settings.seed,
        "shingle_size": settings.shingle_size,
        "signed_shingle_size": settings.signed_shingle_size,
        "lead_words": settings.lead_words,
        "scheme": SCHEME,
        "hash_function": HASH_FUNCTION,
    }


class Signer:
    """Signs shingle sets; safe to share between threads."""

    def __init__(self, settings: DedupSettings) -> None:
        self._settings = settings
        # Permutations are derived from the seed and cost more to build than a
        # signature: one MinHash per thread, cleared for each text (a copy per text
        # cost a fifth of signing).
        self._local = threading.local()

    def _minhash(self) -> MinHash:
        minhash: MinHash | None = getattr(self._local, "minhash", None)
        if minhash is None:
            with sigint_held():
                from datasketch import MinHash
            minhash = MinHash(
                num_perm=self._settings.num_perm,
                seed=self._settings.seed,
                scheme=SCHEME,
                hashfunc=xxhash.xxh32_intdigest,
            )
            self._local.minhash = minhash
        return minhash

    def _digest(self, encoded: Iterable[bytes]) -> bytes:
        minhash = self._minhash()
        minhash.clear()
        minhash.update_batch(encoded)
        return np.asarray(minhash.hashvalues, dtype="<u4").tobytes()

    def sign(self, body_shingles: Iterable[bytes], lead_shingles: Iterable[bytes]) -> Signature:
        """Signatures of a body's and a lead's shingles, encoded as UTF-8."""
        return Signature(self._digest(body_shingles), self._digest(lead_shingles))


# A band key is a 56-bit hash of the band's values, with the band's number in the top
# byte, so all bands of both signatures live in one sorted array searched in one call.
_BAND_SHIFT = np.uint64(56)
_HASH_MASK = np.uint64((1 << 56) - 1)
_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93] * 32,
    dtype=np.uint64,
)


def _band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's choice of (bands, rows) for a Jaccard threshold."""
    # The optimum is integrated with scipy, which loads C extensions on first use.
    with sigint_held():
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


Layout = tuple[tuple[int, int, int], tuple[int, int, int]]


@functools.lru_cache(maxsize=8)
def band_layout(settings: DedupSettings) -> Layout:
    """(bands, rows, first band number) of the body and the lead signature."""
    body_bands, body_rows = _band_layout(settings.body_lsh_threshold, settings.num_perm)
    lead_bands, lead_rows = _band_layout(settings.lead_lsh_threshold, settings.num_perm)
    return (body_bands, body_rows, 0), (lead_bands, lead_rows, body_bands)


def band_keys(signature: Signature, layout: Layout) -> bytes:
    """The keys one item is filed under (uint64s): worked out by workers, used by the index."""
    parts = []
    for raw, (bands, rows, first) in zip((signature.body, signature.lead), layout, strict=True):
        values = np.frombuffer(raw, dtype="<u4")[: bands * rows].astype(np.uint64)
        parts.append(_hash(values.reshape(1, bands, rows), first)[0])
    return np.concatenate(parts).tobytes()


def _merged(
    keys: np.ndarray, slots: np.ndarray, more_keys: np.ndarray, more_slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted key arrays (with their slots) as one; within a key, `keys`' first."""
    at = np.searchsorted(keys, more_keys, side="right")
    return np.insert(keys, at, more_keys), np.insert(slots, at, more_slots)


def _sorted_keys(
    many_band_keys: Sequence[bytes], kind: Literal["quicksort", "stable"] = "quicksort"
) -> tuple[np.ndarray, np.ndarray]:
    """All items' band keys in one sorted array, and which item (by position) each is of."""
    keys = np.frombuffer(b"".join(many_band_keys), dtype=np.uint64)
    owners = np.repeat(np.arange(len(many_band_keys)), [len(keys) // 8 for keys in many_band_keys])
    order = np.argsort(keys, kind=kind)
    return keys[order], owners[order]


def hits_among(
    many_band_keys: Sequence[bytes], per_band: int, first: int = 0
) -> list[Counter[int]]:
    """For each item from `first` on, the items before it in the list sharing bands with
    it (by position), and how many: band_hits() as if all were filed one by one into an
    empty index."""
    found: list[Counter[int]] = [Counter() for _ in many_band_keys[first:]]
    if len(many_band_keys) < 2:
        return found
    # Stable: within a run of equal keys, earlier items first.
    keys, owners = _sorted_keys(many_band_keys, kind="stable")
    later_parts, earlier_parts = [], []
    # Each item with the one `distance` places before it in the same run: runs are
    # short, and once no run is longer than `distance`, none is longer than the next.
    for distance in range(1, per_band + 1):
        at = np.flatnonzero(keys[distance:] == keys[:-distance]) + distance
        if not at.size:
            break
        later_parts.append(owners[at])
        earlier_parts.append(owners[at - distance])
    if not later_parts:
        return found
    later, earlier = np.concatenate(later_parts), np.concatenate(earlier_parts)
    wanted = later >= first
    pairs, counts = np.unique(
        later[wanted] * len(many_band_keys) + earlier[wanted], return_counts=True
    )
    for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
        found[pair // len(many_band_keys) - first][pair % len(many_band_keys)] = count
    return found


def _hash(values: np.ndarray, first: int) -> np.ndarray:
    """Band keys of values shaped (items, bands, rows)."""
    rows = values.shape[2]
    mixed = (values * _MIX[:rows]).sum(axis=2, dtype=np.uint64)
    mixed ^= mixed >> np.uint64(29)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(32)
    band_numbers = np.arange(first, first + values.shape[1], dtype=np.uint64)
    keys: np.ndarray = (mixed & _HASH_MASK) | (band_numbers << _BAND_SHIFT)
    return keys


def best(hits: Counter[int], limit: int) -> set[int]:
    """At most `limit` candidates of band_hits(): those sharing the most bands, then the
    newest (highest id).

    Bands shared grow with similarity, so when hundreds of items qualify (a feed of
    identical bodies, a wire story carried everywhere) the ones kept are the closest
    copies, which place the item in its story as well.
    """
    if len(hits) <= limit:
        return set(hits)
    ranked = sorted(hits.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)
    return {item_id for item_id, _ in ranked[:limit]}


class CandidateIndex:
    """LSH over two signatures per item (body, lead), compact enough for millions of items.

    Band layouts come from datasketch (the false-positive/false-negative optimum
    for each threshold); the tables are ours. datasketch's own tables keep a
    Python set per bucket, about 18 KB per item here (bench/dedup_stage.py), which
    rules out a large window in memory. Here each band of each item is 12 bytes:
    its key in one sorted uint64 array and the item's slot in a parallel uint32
    array; per slot, the item id, its publish time and whether it is still live.
    New items wait in a dict and are merged a batch at a time into a young pair of
    arrays, which are merged into the main pair when they hold 1/16 as much;
    removed items only go dark, and the arrays are compacted when a quarter is dark.
    """

    # Items held in the dict before a merge into the young arrays: ~5 KB each there,
    # ~850 bytes once merged. 1/512 of the index, at least 256: the dict's share of
    # memory stays small (a 20,000-item import measured 1,014 bytes an item with a
    # floor of 1,024, 927 with 256).
    _BATCH = 256
    _BATCH_SHARE = 512
    # The young arrays are merged into the main ones when they hold this share of them.
    # A merge moves every entry of the arrays it merges into, so both merges cost a
    # constant amount per item (about 16 moves of each entry), where one level with
    # the dict merged straight into the main arrays at 1/64 cost 64, a seventh of the
    # writer's time at 200,000 items (docs/design.md, "The candidate index").
    _YOUNG_SHARE = 16
    # Main-array answers kept for items asked about ahead (see merged_hits): an import
    # asks about one batch (500 items) ahead of the one it links.
    _REMEMBERED = 1024

    def __init__(self, settings: DedupSettings) -> None:
        self._layouts = band_layout(settings)
        self._per_item = sum(bands for bands, _, _ in self._layouts)
        self._keys = np.empty(0, dtype=np.uint64)
        self._slots = np.empty(0, dtype=np.uint32)
        self._young_keys = np.empty(0, dtype=np.uint64)
        self._young_slots = np.empty(0, dtype=np.uint32)
        self._slot_ids = np.empty(0, dtype=np.int64)
        self._slot_published = np.empty(0, dtype=np.float64)
        self._slot_live = np.empty(0, dtype=bool)
        self._live = 0
        self._generation = 0
        # What the main arrays answered for band keys asked about ahead; dropped
        # whenever they could answer differently.
        self._remembered: dict[tuple[bytes, int | None], Counter[int]] = {}
        # Items added since the last merge: id -> (band keys, published).
        self._recent: dict[int, tuple[np.ndarray, float]] = {}
        # Band key -> the one recent item filed under it, or a list when several are.
        self._recent_keys: dict[int, int | list[int]] = {}

    def __len__(self) -> int:
        return self._live + len(self._recent)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._recent or bool(self._live_slots_of(item_id).size)

    def _live_slots_of(self, item_id: int) -> np.ndarray:
        # A scan, but removals are rare (changed items, rollbacks); pruning is vectorised.
        found: np.ndarray = np.flatnonzero((self._slot_ids == item_id) & self._slot_live)
        return found

    def memory_bytes(self) -> int:
        """What the index holds in memory, arrays and bookkeeping (an estimate for dicts)."""
        arrays = sum(
            a.nbytes
            for a in (
                self._keys,
                self._slots,
                self._young_keys,
                self._young_slots,
                self._slot_ids,
                self._slot_published,
                self._slot_live,
            )
        )
        bookkeeping = sys.getsizeof(self._recent) + sys.getsizeof(self._recent_keys)
        entries = sum(keys.nbytes + 112 + 24 for keys, _ in self._recent.values())
        entries += sum(
            32 + (sys.getsizeof(ids) if isinstance(ids, list) else 28)
            for ids in self._recent_keys.values()
        )
        remembered = sys.getsizeof(self._remembered) + sum(
            sys.getsizeof(keys) + sys.getsizeof(answer) + 72 * len(answer)
            for (keys, _), answer in self._remembered.items()
        )
        return arrays + bookkeeping + entries + remembered

    def add(self, item_id: int, signature: Signature, published: datetime) -> None:
        self.add_keys(item_id, band_keys(signature, self._layouts), published)

    def add_keys(
        self, item_id: int, band_keys: bytes, published: datetime, *, new: bool = False
    ) -> None:
        """File an item under its band_keys(), worked out beforehand.

        An item filed already is filed anew. With `new`, the caller knows it is not
        there: looking costs a scan of the merged arrays.
        """
        if not new:
            self.remove(item_id)
        keys = np.frombuffer(band_keys, dtype=np.uint64)
        self._recent[item_id] = (keys, published.timestamp())
        filed = self._recent_keys
        for key in keys.tolist():
            holders = filed.get(key)
            if holders is None:
                filed[key] = item_id
            elif isinstance(holders, int):
                filed[key] = [holders, item_id]
            else:
                holders.append(item_id)
        if len(self._recent) >= max(self._BATCH, self._live // self._BATCH_SHARE):
            self._merge_recent()

    def remove(self, item_id: int) -> None:
        recent = self._recent.pop(item_id, None)
        if recent is not None:
            filed = self._recent_keys
            for key in recent[0].tolist():
                holders = filed[key]
                if isinstance(holders, int):
                    del filed[key]
                else:
                    holders.remove(item_id)
                    if len(holders) == 1:
                        filed[key] = holders[0]
            return
        if self._live:
            slots = self._live_slots_of(item_id)
            if slots.size:
                self._slot_live[slots] = False
                self._live -= int(slots.size)
                self._changed(main=True)

    def query(self, signature: Signature) -> set[int]:
        return self.query_keys(band_keys(signature, self._layouts))

    def query_keys(self, band_keys: bytes) -> set[int]:
        """Items filed under any of an item's band_keys()."""
        return set(self.band_hits(band_keys))

    def band_hits(self, band_keys: bytes, per_band: int | None = None) -> Counter[int]:
        """Items sharing at least one band with `band_keys`, with how many they share.

        With `per_band`, only that many items filed under each band count (the later
        ones added, as far as the arrays keep order), from each of the main arrays,
        the young ones and the recent items: a band shared by thousands of identical
        bodies costs no more than that.
        """
        found = self.merged_hits([band_keys], per_band)[0]
        found.update(self.recent_hits(band_keys, per_band))
        return found

    @property
    def generation(self) -> int:
        """Changes whenever merged_hits() could answer differently (merges, removals)."""
        return self._generation

    def recent_hits(self, band_keys: bytes, per_band: int | None = None) -> Counter[int]:
        """band_hits() among the items added since the last merge."""
        found: Counter[int] = Counter()
        if self._recent_keys:
            cap = per_band or len(self._recent) + 1
            filed = self._recent_keys
            for key in np.frombuffer(band_keys, dtype=np.uint64).tolist():
                holders = filed.get(key)
                if holders is None:
                    continue
                if isinstance(holders, int):
                    found[holders] += 1
                else:
                    found.update(holders[-cap:])
        return found

    def merged_hits(
        self,
        many_band_keys: Sequence[bytes],
        per_band: int | None = None,
        *,
        ahead: bool = False,
    ) -> list[Counter[int]]:
        """band_hits() among merged items, for several items in one pass over the arrays.

        Valid until `generation` changes: items added since stay in the recent dict
        until a merge, which changes it. Asked `ahead` (for items to be linked later),
        the main arrays' answers are also kept, and the next question about the same
        band keys takes its answer from there if those arrays have not changed since:
        searching them is bound by memory latency, the young arrays' much less.
        """
        found: list[Counter[int] | None] = []
        searched: list[bytes] = []
        for keys in many_band_keys:
            kept = self._remembered.get((keys, per_band))
            found.append(kept.copy() if kept is not None else None)
            if kept is None:
                searched.append(keys)
        main = iter(self._run_hits(self._keys, self._slots, searched, per_band))
        answers: list[Counter[int]] = []
        for keys, kept in zip(many_band_keys, found, strict=True):
            if kept is None:
                kept = next(main)
                if ahead:
                    self._remembered[keys, per_band] = kept.copy()
            answers.append(kept)
        # The oldest answers go first: they were for items linked by now.
        while len(self._remembered) > self._REMEMBERED:
            del self._remembered[next(iter(self._remembered))]
        young = self._run_hits(self._young_keys, self._young_slots, many_band_keys, per_band)
        for answer, more in zip(answers, young, strict=True):
            answer.update(more)
        return answers

    def _run_hits(
        self,
        run_keys: np.ndarray,
        run_slots: np.ndarray,
        many_band_keys: Sequence[bytes],
        per_band: int | None,
    ) -> list[Counter[int]]:
        """band_hits() among the items of one pair of sorted arrays."""
        found: list[Counter[int]] = [Counter() for _ in many_band_keys]
        if not run_keys.size or not many_band_keys:
            return found
        cap = per_band or run_keys.size
        # Sorted needles keep the binary searches local. Most bands of a new story are
        # found nowhere: look for the end of a run only where one starts.
        needles, owners = _sorted_keys(many_band_keys)
        left = np.searchsorted(run_keys, needles, side="left")
        inside = left < run_keys.size
        hits = np.zeros(needles.size, dtype=bool)
        hits[inside] = run_keys[left[inside]] == needles[inside]
        if not hits.any():
            return found
        needles, left = needles[hits], left[hits]
        # Most runs are one item long: search for their end only where the next key
        # is the same (it lies in the same cache line).
        right = left + 1
        longer = np.flatnonzero(right < run_keys.size)
        longer = longer[run_keys[right[longer]] == needles[longer]]
        if longer.size:
            right[longer] = np.searchsorted(run_keys, needles[longer], side="right")
        left = np.maximum(left, right - cap)
        lengths = right - left
        # Every position of every run, flattened: run starts repeated, plus offsets.
        ends = np.cumsum(lengths)
        positions = np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)
        slots = run_slots[positions + np.repeat(left, lengths)]
        owners = np.repeat(owners[hits], lengths)
        live = self._slot_live[slots]
        ids, owners = self._slot_ids[slots[live]], owners[live]
        by_owner = np.argsort(owners, kind="stable")
        ids_in_order = ids[by_owner].tolist()
        bounds = np.searchsorted(owners[by_owner], np.arange(len(many_band_keys) + 1)).tolist()
        for number, counter in enumerate(found):
            if bounds[number] < bounds[number + 1]:
                counter.update(ids_in_order[bounds[number] : bounds[number + 1]])
        return found

    def _changed(self, *, main: bool) -> None:
        self._generation += 1
        if main:
            self._remembered.clear()

    def prune(self, before: datetime) -> int:
        """Forget items published before `before`; returns how many."""
        cutoff = before.timestamp()
        old = [i for i, (_, published) in self._recent.items() if published < cutoff]
        for item_id in old:
            self.remove(item_id)
        dark = self._slot_live & (self._slot_published < cutoff)
        count = int(dark.sum())
        self._slot_live[dark] = False
        self._live -= count
        if count:
            self._changed(main=True)
        if self._dark() > max(self._BATCH, len(self._slot_ids) // 4):
            self._rebuild()
        return len(old) + count

    def load(self, rows: Iterable[tuple[int, bytes, bytes, datetime]], chunk: int = 50_000) -> None:
        """Add many stored signatures at once: hashed in bulk, merged once."""
        ids: list[int] = []
        published: list[float] = []
        bodies = bytearray()
        leads = bytearray()
        key_parts: list[np.ndarray] = []
        id_parts: list[np.ndarray] = []
        published_parts: list[np.ndarray] = []

        def flush() -> None:
            if not ids:
                return
            key_parts.append(self._bulk_keys(bytes(bodies), bytes(leads), len(ids)))
            id_parts.append(np.array(ids, dtype=np.int64))
            published_parts.append(np.array(published, dtype=np.float64))
            ids.clear()
            published.clear()
            bodies.clear()
            leads.clear()

        for item_id, body, lead, when in rows:
            self.remove(item_id)
            ids.append(item_id)
            published.append(when.timestamp())
            bodies += body
            leads += lead
            if len(ids) >= chunk:
                flush()
        flush()
        if key_parts:
            self._rebuild(
                np.concatenate(key_parts), np.concatenate(id_parts), np.concatenate(published_parts)
            )

    def _bulk_keys(self, bodies: bytes, leads: bytes, count: int) -> np.ndarray:
        parts = []
        for raw, (bands, rows, first) in zip((bodies, leads), self._layouts, strict=True):
            values = np.frombuffer(raw, dtype="<u4").reshape(count, -1)[:, : bands * rows]
            parts.append(_hash(values.astype(np.uint64).reshape(count, bands, rows), first))
        return np.concatenate(parts, axis=1)

    def _dark(self) -> int:
        return len(self._slot_ids) - self._live

    def _recent_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = list(self._recent)
        keys = np.stack([self._recent[i][0] for i in ids]).astype(np.uint64, copy=False)
        published = np.array([self._recent[i][1] for i in ids], dtype=np.float64)
        self._recent = {}
        self._recent_keys = {}
        return keys, np.array(ids, dtype=np.int64), published

    def _merge_recent(self) -> None:
        """Insert the recent items into the young arrays, and those into the main ones
        when they have grown enough (merges, not re-sorts)."""
        if self._dark() > max(self._BATCH, len(self._slot_ids) // 4):
            self._rebuild()
            return
        keys, ids, published = self._recent_arrays()
        first = len(self._slot_ids)
        flat = keys.reshape(-1)
        slots = np.repeat(np.arange(first, first + len(ids), dtype=np.uint32), self._per_item)
        order = np.argsort(flat)
        self._young_keys, self._young_slots = _merged(
            self._young_keys, self._young_slots, flat[order], slots[order]
        )
        self._slot_ids = np.concatenate([self._slot_ids, ids])
        self._slot_published = np.concatenate([self._slot_published, published])
        self._slot_live = np.concatenate([self._slot_live, np.ones(len(ids), dtype=bool)])
        self._live += len(ids)
        main = self._young_keys.size * self._YOUNG_SHARE >= self._keys.size
        if main:
            self._keys, self._slots = _merged(
                self._keys, self._slots, self._young_keys, self._young_slots
            )
            self._young_keys = np.empty(0, dtype=np.uint64)
            self._young_slots = np.empty(0, dtype=np.uint32)
        self._changed(main=main)

    def _rebuild(
        self,
        extra_keys: np.ndarray | None = None,
        extra_ids: np.ndarray | None = None,
        extra_published: np.ndarray | None = None,
    ) -> None:
        """Sorted arrays anew from live merged items, recent ones and `extra`."""
        per_item = self._per_item
        live = np.flatnonzero(self._slot_live)
        groups_keys = [np.empty((0, per_item), dtype=np.uint64)]
        if len(live):
            # Each merged item's keys, found back from both pairs of arrays by slot.
            all_slots = np.concatenate([self._slots, self._young_slots])
            order = np.argsort(all_slots, kind="stable")
            all_keys = np.concatenate([self._keys, self._young_keys])
            groups_keys.append(all_keys[order].reshape(-1, per_item)[live])
        groups_ids = [self._slot_ids[live]]
        groups_published = [self._slot_published[live]]
        if self._recent:
            keys, ids, published = self._recent_arrays()
            groups_keys.append(keys)
            groups_ids.append(ids)
            groups_published.append(published)
        if extra_keys is not None and extra_ids is not None and extra_published is not None:
            groups_keys.append(extra_keys)
            groups_ids.append(extra_ids)
            groups_published.append(extra_published)
        keys = np.concatenate(groups_keys)
        self._slot_ids = np.concatenate(groups_ids)
        self._slot_published = np.concatenate(groups_published)
        self._slot_live = np.ones(len(self._slot_ids), dtype=bool)
        self._live = len(self._slot_ids)
        self._changed(main=True)
        # Column b holds band b's keys, and the band number is each key's top byte:
        # sorting band by band and laying the bands end to end sorts the whole array,
        # in under half the time of one sort over everything (measured at 200,000).
        count = len(keys)
        by_band = np.ascontiguousarray(keys.T)
        del keys
        self._keys = np.empty(count * per_item, dtype=np.uint64)
        self._slots = np.empty(count * per_item, dtype=np.uint32)
        self._young_keys = np.empty(0, dtype=np.uint64)
        self._young_slots = np.empty(0, dtype=np.uint32)
        for band in range(per_item):
            # Equal keys may come out in any order: queries take every slot of a key,
            # and only a run longer than a query's cap loses members (any of them).
            order = np.argsort(by_band[band])
            self._keys[band * count : (band + 1) * count] = by_band[band][order]
            self._slots[band * count : (band + 1) * count] = order
