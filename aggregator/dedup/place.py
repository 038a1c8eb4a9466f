"""Pure placement: which copy came from which, who is the story's original.

No I/O, no clock: the linker hands in the members that the verdict matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.models import Comparison, DedupSettings, Member, Relation


@dataclass(frozen=True, slots=True)
class Match:
    member: Member
    comparison: Comparison
    # The verdict's score for the pair (None for a pair it did not weigh).
    score: float | None = None


def relation(
    child: Member, parent: Member, comparison: Comparison, settings: DedupSettings
) -> Relation:
    if child.publisher.casefold() != parent.publisher.casefold():
        return Relation.SYNDICATED
    if comparison.jaccard >= settings.duplicate_jaccard:
        return Relation.DUPLICATE
    return Relation.VERSION


def credits_between(child: Member, parent: Member, hints: Sequence[str] = ()) -> bool:
    """Whether `child` names `parent`'s publisher as its source (or its feed syndicates it)."""
    publisher = parent.publisher.casefold()
    return publisher != child.publisher.casefold() and (
        publisher in {c.casefold() for c in child.credits}
        or publisher in {h.casefold() for h in hints}
    )


def earlier(a: Member, b: Member) -> bool:
    """Publish time first, then first-seen, then id: a total order for ties."""
    return (a.published, a.first_seen, a.id) < (b.published, b.first_seen, b.id)


def choose_parent(
    new: Member, matches: Sequence[Match], hints: Sequence[str] = ()
) -> tuple[Match | None, str]:
    """The copy `new` most likely came from, and the signal that decided it.

    A credit to a matched item's publisher wins; otherwise the most similar
    matched item published before `new`. None means `new` is earlier than
    every match: it is the original of the story.
    """
    credited = [m for m in matches if credits_between(new, m.member, hints)]
    if credited:
        return max(credited, key=_closeness), "attribution"
    before = [m for m in matches if earlier(m.member, new) and not credits_between(m.member, new)]
    if before:
        best = max(before, key=_closeness)
        method = "published" if best.member.published != new.published else "first_seen"
        return best, method
    return None, "published"


def _closeness(match: Match) -> tuple[float, float, int]:
    c = match.comparison
    return (c.jaccard, c.containment, -match.member.id)
