"""Pure: is one text a copy of another, which copy came from which, who is the original.

No I/O, no clock: the linker hands in prepared texts, members and settings.
docs/design.md gives the measurements behind each threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.models import Comparison, DedupSettings, Member, PreparedText, Relation

# How far into the longer text the shared part may start and still count as
# "the same opening": covers a syndicator's header lines and related-links blocks.
ALIGN_WORDS = 150
ALIGN_SHARE = 0.3

# Share of the shorter headline's words found in the other headline, required when
# two texts share only their opening (see is_copy).
MIN_TITLE_OVERLAP = 0.3

_CORRECTION = re.compile(
    r"^\s*(?:corrected|correction|corrects|refile|refiled|update\s*\d*|updated)\b",
    re.IGNORECASE,
)


def compare(a: PreparedText, b: PreparedText, shingle_size: int) -> Comparison:
    """Similarity of two prepared bodies, measured on their shingle sets.

    Figures and names are compared only in the shorter text's paragraphs whose
    wording (figures masked) is also in the longer one: a syndicator's chrome
    lines carry their own names and dates, which say nothing about the story.
    """
    shared_set = a.shingles & b.shingles
    shared = len(shared_set)
    union = len(a.shingles) + len(b.shingles) - shared
    shorter, longer = (a, b) if len(a.shingles) <= len(b.shingles) else (b, a)
    containment = shared / len(shorter.shingles) if shorter.shingles else 0.0
    overlapping = [
        n
        for n, (skeleton, line_shingles) in enumerate(shorter.line_skeletons)
        if skeleton in longer.skeleton_lines or line_shingles & longer.skeleton_shingles
    ]
    figures = frozenset().union(*(shorter.line_figures[n] for n in overlapping))
    names = frozenset().union(*(shorter.line_names[n] for n in overlapping))
    subject = next(
        (shorter.line_subjects[n] for n in overlapping if shorter.line_subjects[n]), frozenset()
    )
    return Comparison(
        jaccard=shared / union if union else 0.0,
        containment=containment,
        shared=shared,
        figures_missing=len(figures - longer.figures),
        figures=len(figures),
        name_mismatch=len(names - longer.names) / len(names) if names else 0.0,
        subject_missing=len(subject - longer.names),
        aligned=_aligned(shorter, longer, shared_set, shingle_size),
    )


def identical(shingle_count: int, figure_count: int) -> Comparison:
    """compare() of a prepared body with itself, worked out from two counts.

    Two items whose bodies are the same once each feed's boilerplate is gone (a
    wire story carried unedited) need no preparation to be weighed.
    """
    whole = 1.0 if shingle_count else 0.0
    return Comparison(
        jaccard=whole,
        containment=whole,
        shared=shingle_count,
        figures_missing=0,
        figures=figure_count,
        name_mismatch=0.0,
        subject_missing=0,
        aligned=bool(shingle_count),
    )


def _aligned(
    shorter: PreparedText, longer: PreparedText, shared: frozenset[str], size: int
) -> bool:
    """Whether the shorter text's opening is found near the top of the longer one."""
    if not shared or not shorter.words:
        return False
    opening = [s for s in shorter.lead_shingles[:10] if s in shared]
    if not opening:
        return False
    words = longer.words
    limit = max(ALIGN_WORDS, int(len(words) * ALIGN_SHARE))
    if len(words) >= size and all(s.count(" ") == size - 1 for s in opening):
        # A whole shingle starting among the first `limit` words is a run of its words,
        # space-delimited, in the text of the first limit + size - 1 words.
        head = f" {' '.join(words[: limit + size - 1])} "
        return any(f" {s} " in head for s in opening)
    window = {" ".join(words[i : i + size]) for i in range(min(limit, max(1, len(words))))}
    return any(s in window for s in opening)


def title_overlap(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of the shorter headline's distinct words that the other headline has."""
    left, right = set(a), set(b)
    if not left or not right:
        return 1.0  # a missing headline is no evidence either way
    return len(left & right) / min(len(left), len(right))


def is_correction(title: str) -> bool:
    return bool(_CORRECTION.match(title))


def is_copy(
    comparison: Comparison,
    shorter_shingles: int,
    settings: DedupSettings,
    *,
    correction: bool = False,
    same_headline: bool = False,
    headline_overlap: float = 1.0,
) -> bool:
    """The verdict: enough of the shorter text is in the longer one, with the same key terms.

    High containment alone is not enough when the overlap is a small part of
    both texts: then the shorter text's opening must also open the longer one
    (a summary or a truncated copy), otherwise it is a quote or a shared
    paragraph. Different figures or names in otherwise matching texts are a
    templated report (next quarter's results, another company's filing), not a
    copy; a correction may change one.
    A text too short to judge by overlap ("Qtly div 20 cts vs 20 cts prior")
    is a copy only when it is identical and carries the same headline: the same
    words, or (as the linker judges it) headlines naming the same instruments.
    """
    if shorter_shingles < settings.min_shingles:
        return same_headline and shorter_shingles > 0 and comparison.jaccard == 1.0
    if comparison.containment < settings.min_containment:
        return False
    # With little overlap overall, only a shared opening counts (a summary of a full
    # text). A page quoting another story's blurb near its top looks the same, so the
    # headlines must share words too.
    if comparison.jaccard < settings.min_jaccard and (
        not comparison.aligned or headline_overlap < MIN_TITLE_OVERLAP
    ):
        return False
    allowed = int(settings.figure_tolerance * comparison.figures) + (1 if correction else 0)
    if comparison.figures_missing > allowed:
        return False
    if comparison.subject_missing and not correction:
        # Same template, another company: the opening names someone the other lacks.
        return False
    return comparison.name_mismatch <= settings.max_name_mismatch


@dataclass(frozen=True, slots=True)
class Match:
    member: Member
    comparison: Comparison


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
