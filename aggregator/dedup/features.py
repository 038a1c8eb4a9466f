"""Pure: what two texts, and the two items they stand in, have in common.

The one place where a pair's features are assembled: compare() measures two
prepared bodies (it runs on the writer or, beforehand, in worker processes),
pair_features() adds what the items say about themselves. The verdict reads
nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aggregator.models import Comparison, PreparedText, Slot

# How far into the longer text the shared part may start and still count as
# "the same opening": covers a syndicator's header lines and related-links blocks.
ALIGN_WORDS = 150
ALIGN_SHARE = 0.3

# Added to the masked passages two texts share before taking the share that
# differs: one or two in common (two datelines of one shape) say little.
SUBSTITUTION_PRIOR = 5

_CORRECTION = re.compile(
    r"^\s*(?:corrected|correction|corrects|refile|refiled|update\s*\d*|updated)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PairFeatures:
    """Everything the verdict may weigh about a new item and one candidate."""

    text: Comparison
    # The smaller prepared body's shingle count: below a floor, overlap says little.
    shorter_shingles: int
    same_url: bool
    same_publisher: bool
    # Either headline marks a correction or refile by the same publisher.
    correction: bool
    # The same headline words, or headlines naming the same instruments.
    same_headline: bool
    headline_overlap: float
    lag_seconds: float
    # The headlines name other companies: see other_instruments().
    other_instruments: bool = False


def pair_features(
    text: Comparison,
    shorter_shingles: int,
    *,
    titles: tuple[Sequence[str], Sequence[str]],
    same_instruments: bool,
    same_url: bool,
    same_publisher: bool,
    correction: bool,
    lag_seconds: float,
    instruments: tuple[Collection[str], Collection[str]] = ((), ()),
) -> PairFeatures:
    """The features of one pair; `titles` are the two headlines' tokens(),
    `instruments` the tickers each headline names."""
    mine, theirs = titles
    return PairFeatures(
        text=text,
        shorter_shingles=shorter_shingles,
        same_url=same_url,
        same_publisher=same_publisher,
        correction=correction,
        same_headline=list(mine) == list(theirs) or same_instruments,
        headline_overlap=title_overlap(mine, theirs),
        lag_seconds=abs(lag_seconds),
        other_instruments=other_instruments(titles, instruments),
    )


# Words a correction or refile puts in front of a headline.
_CORRECTION_WORDS = frozenset(
    "corrected correction corrects refile refiled repeat update updated".split()
)


def other_instruments(
    titles: tuple[Sequence[str], Sequence[str]],
    instruments: tuple[Collection[str], Collection[str]],
) -> bool:
    """Two headlines about two companies: each names instruments, they share none,
    and neither headline's first word (where a wire headline names the company) is
    in the other.

    One template filled for another company ("AMOCO <AN> RAISES CRUDE PRICES",
    "TEXACO <TX> UNIT RAISES CRUDE OIL PRICES") shares most of its words; a copy
    keeps the symbol, and a corrected symbol keeps the name ("WESTPORT BANCORP
    <WEBAT.O>", then "<WBAT.O>"). Reuters-21578: of the 8 links between headlines with
    disjoint symbols, 6 joined two companies and 2 were such corrections.
    """
    mine, theirs = instruments
    if not mine or not theirs or not set(mine).isdisjoint(theirs):
        return False
    firsts = [next((w for w in title if w not in _CORRECTION_WORDS), None) for title in titles]
    if firsts[0] is None or firsts[1] is None:
        return False
    return firsts[0] not in titles[1] and firsts[1] not in titles[0]


def _share(a: frozenset[int] | frozenset[str], b: frozenset[int] | frozenset[str]) -> float:
    """Share of the smaller set found in the other."""
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else 0.0


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
        short_containment=_share(a.prose_short, b.prose_short),
        unquoted_containment=_share(a.prose_unquoted, b.prose_unquoted),
        substitution=substitution(a.prose_slots, b.prose_slots),
    )


def substitution(a: frozenset[Slot], b: frozenset[Slot]) -> float:
    """Share of the masked passages both texts have that they write differently.

    Figures differ only beyond rounding: "704.885" and "704.88" agree (sub-editors
    round), "720" and "712" do not.
    """
    if not a or not b:
        return 0.0
    shared = {slot[0] for slot in a}.intersection([slot[0] for slot in b])
    # Most shared passages are written alike: the same slot is in both sets.
    pending = shared.difference([slot[0] for slot in a & b])
    if not pending:
        return 0.0
    mine: dict[int, list[Slot]] = {}
    for slot in a:
        if slot[0] in pending:
            mine.setdefault(slot[0], []).append(slot)
    theirs: dict[int, list[Slot]] = {}
    for slot in b:
        if slot[0] in pending:
            theirs.setdefault(slot[0], []).append(slot)
    changed = sum(
        1
        for masked, slots in theirs.items()
        if not any(_agree(x, y) for x in mine[masked] for y in slots)
    )
    return changed / (len(shared) + SUBSTITUTION_PRIOR)


def _agree(x: Slot, y: Slot) -> bool:
    """The same names, and figures equal up to rounding."""
    return x[1] == y[1] and all(same_figure(f, g) for f, g in zip(x[2], y[2], strict=True))


def same_figure(a: str, b: str) -> bool:
    """Equal, or one is the other rounded to fewer decimals."""
    if a == b:
        return True
    places_a, places_b = _decimals(a), _decimals(b)
    if places_a is None or places_b is None or places_a == places_b:
        return False
    try:
        difference = abs(float(a) - float(b))
    except ValueError:
        return False
    return difference <= 0.5 / 10.0 ** min(places_a, places_b) + 1e-9


def _decimals(figure: str) -> int | None:
    whole, _, fraction = figure.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    return len(fraction)


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
        short_containment=whole,
        unquoted_containment=whole,
        substitution=0.0,
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
