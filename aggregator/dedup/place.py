"""Pure placement: which copy came from which, who is the story's original.

No I/O, no clock: the linker hands in the members that the verdict matched and
the originals of their stories; place() returns the links to write, and the
linker applies them. Where a link needs a comparison the verdict did not make
(a former original hung under the merged story's first item), the edge says so
and the linker measures it from the stored texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class Edge:
    """One link to write: `child` under `parent`, or the story's original (no parent)."""

    child: Member
    parent: Member | None
    method: str
    # None: the pair was not weighed; the linker compares the two stored texts.
    comparison: Comparison | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    # The story the new item ends in, named by its original's id.
    story: int
    # Stories folded into `story`: the new item bridged them.
    merged: tuple[int, ...]
    edges: tuple[Edge, ...]


def place(
    new: Member,
    matches: Sequence[Match],
    roots: Mapping[int, Member],
    hints: Sequence[str] = (),
) -> Placement:
    """Where `new` goes, given the items it matched and their stories' originals
    (story id -> original; at least one match).

    The new item may bridge several stories (a full text matching a summary and a
    trimmed copy that did not match each other): they become one story whose
    original is the earliest of their originals and the new item.
    """
    parent, method = choose_parent(new, matches, hints)
    earliest = min(roots.values(), key=lambda r: (r.published, r.first_seen, r.id))
    new_is_root = parent is None and all(
        earlier(new, root) or credits_between(root, new) for root in roots.values()
    )
    story = new.id if new_is_root else earliest.id
    edges: list[Edge] = []
    if new_is_root:
        edges.append(Edge(new, None, method))
    elif parent is None:
        # Earlier than all it matched, but its story began before it.
        edges.append(Edge(new, earliest, "published"))
    else:
        edges.append(Edge(new, parent.member, method, parent.comparison, parent.score))
    known = {m.member.id: m for m in matches}
    for root in roots.values():
        if root.id in (story, new.id):
            continue
        # A former original now hangs under the new item when that came first,
        # else under the merged story's original.
        if new_is_root or earlier(new, root) or credits_between(root, new):
            matched = known.get(root.id)
            how = (
                "attribution"
                if credits_between(root, new)
                else method
                if new_is_root
                else "published"
            )
            edges.append(
                Edge(
                    root,
                    new,
                    how,
                    matched.comparison if matched else None,
                    matched.score if matched else None,
                )
            )
        else:
            how = "attribution" if credits_between(root, earliest) else "merge"
            edges.append(Edge(root, earliest, how))
    merged = tuple(story_id for story_id in roots if story_id != story)
    return Placement(story, merged, tuple(edges))
