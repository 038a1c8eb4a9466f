"""MinHash signatures and the LSH candidate index. The only datasketch importer.

Two signatures per item: one of the whole prepared body and one of its lead
(the first words), so that a feed's summary finds the full text it was cut
from even when their Jaccard similarity as wholes is tiny. Signatures are
stored as raw uint32 hash values with the parameters that made them, so the
index can be rebuilt from the store after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH

from aggregator.models import DedupSettings

SCHEME = "affine32"
# xxh32 is ~3x faster than datasketch's default sha1_hash32 on short shingles, and the
# affine32 scheme pre-mixes its input, so the estimator is as good.
HASH_FUNCTION = "xxh32"


@dataclass(frozen=True, slots=True)
class Signature:
    body: bytes
    lead: bytes


def parameters(settings: DedupSettings) -> dict[str, object]:
    """Everything that makes two signatures comparable; stored next to them."""
    return {
        "num_perm": settings.num_perm,
        "seed": settings.seed,
        "shingle_size": settings.shingle_size,
        "lead_words": settings.lead_words,
        "scheme": SCHEME,
        "hash_function": HASH_FUNCTION,
    }


class Signer:
    def __init__(self, settings: DedupSettings) -> None:
        self._num_perm = settings.num_perm
        self._seed = settings.seed
        # Permutations are derived from the seed; build them once, copy per item.
        self._template = MinHash(
            num_perm=settings.num_perm,
            seed=settings.seed,
            scheme=SCHEME,
            hashfunc=xxhash.xxh32_intdigest,
        )

    def _digest(self, shingles: Iterable[str]) -> bytes:
        minhash = self._template.copy()
        minhash.update_batch([s.encode("utf-8") for s in shingles])
        return np.asarray(minhash.hashvalues, dtype="<u4").tobytes()

    def sign(self, body_shingles: Iterable[str], lead_shingles: Iterable[str]) -> Signature:
        return Signature(self._digest(body_shingles), self._digest(lead_shingles))


class CandidateIndex:
    """Two in-memory LSH tables (body, lead) over item ids."""

    def __init__(self, settings: DedupSettings) -> None:
        self._seed = settings.seed
        self._body = MinHashLSH(threshold=settings.body_lsh_threshold, num_perm=settings.num_perm)
        self._lead = MinHashLSH(threshold=settings.lead_lsh_threshold, num_perm=settings.num_perm)
        self._keys: set[int] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._keys

    def _lean(self, raw: bytes) -> LeanMinHash:
        values = np.frombuffer(raw, dtype="<u4")
        return LeanMinHash(seed=self._seed, hashvalues=values, scheme=SCHEME)

    def add(self, item_id: int, signature: Signature) -> None:
        if item_id in self._keys:
            self.remove(item_id)
        self._body.insert(item_id, self._lean(signature.body), check_duplication=False)
        self._lead.insert(item_id, self._lean(signature.lead), check_duplication=False)
        self._keys.add(item_id)

    def remove(self, item_id: int) -> None:
        if item_id in self._keys:
            self._body.remove(item_id)
            self._lead.remove(item_id)
            self._keys.discard(item_id)

    def query(self, signature: Signature) -> set[int]:
        found: set[int] = set(self._body.query(self._lean(signature.body)))
        found.update(self._lead.query(self._lean(signature.lead)))
        return found
