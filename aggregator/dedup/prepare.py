"""A body prepared for near-duplicate checks: kept paragraphs, shingles, figures, names."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregator.models import PreparedText, SigningView, Slot
from aggregator.text.tokens import (
    _APOSTROPHES,
    _fingerprint,
    _line_tokens,
    cased_tokens,
    distinct_shingles,
    encoded_shingles,
    paragraphs,
    shingles,
)

# A lead taken from prose lines, so credit lines, stamps and ticker headers at
# the top of a syndicated page do not shift it.
_MIN_LEAD_LINE_WORDS = 8


def _kept_paragraphs(
    text: str, boilerplate: frozenset[str]
) -> tuple[list[str], list[str], list[tuple[str, ...]], frozenset[str]]:
    """The paragraphs that are not boilerplate: (lines, their keys, their words), and
    the keys of all paragraphs, boilerplate included."""
    lines: list[str] = []
    keys: list[str] = []
    line_words: list[tuple[str, ...]] = []
    every: set[str] = set()
    for line in paragraphs(text):
        chunk = _line_tokens(line)
        key = _fingerprint(chunk)
        every.add(key)
        if key not in boilerplate:
            lines.append(line)
            keys.append(key)
            line_words.append(chunk)
    return lines, keys, line_words, frozenset(every)


def _words_and_lead(
    line_words: Sequence[Sequence[str]], lead_words: int
) -> tuple[list[str], list[str]]:
    """All kept words, and the lead: the first `lead_words` of the prose lines."""
    words = [word for chunk in line_words for word in chunk]
    prose = [w for chunk in line_words if len(chunk) >= _MIN_LEAD_LINE_WORDS for w in chunk]
    return words, (prose or words)[:lead_words]


def signing_view(
    text: str,
    boilerplate: frozenset[str],
    *,
    shingle_size: int,
    lead_words: int,
    signed_shingle_size: int,
) -> SigningView:
    """The part of prepare_body() that signing needs, at about a third of its cost.

    Most items never meet a candidate, so the figures, names and masked paragraphs
    that only a verdict reads are not worked out for them.
    """
    lines, _, line_words, every = _kept_paragraphs(text, boilerplate)
    words, lead = _words_and_lead(line_words, lead_words)
    return SigningView(
        lines=tuple(lines),
        paragraph_keys=every,
        shingle_count=distinct_shingles(words, shingle_size),
        signed=frozenset(encoded_shingles(words, signed_shingle_size)),
        lead_shingles=tuple(encoded_shingles(lead, shingle_size)),
        figure_count=len([word for word in set(words) if word[0].isdigit()]),
    )


# A stored item is prepared again each time it is a candidate for a new one; a
# burst of copies of one story asks for the same few texts over and over. Each
# prepared text of ~350 words holds ~180 KB of shingle sets, hence a small cache.
@functools.lru_cache(maxsize=256)
def prepare_body(
    text: str, boilerplate: frozenset[str], *, shingle_size: int, lead_words: int
) -> PreparedText:
    """Clean body for near-duplicate checks: the feed's recurring lines removed.

    Besides the word shingles it keeps, per paragraph, a "skeleton" (figures
    replaced by #) so the verdict can tell which paragraphs two texts share as
    wording, and compare only those paragraphs' figures and names.
    """
    lines, keys, line_words, _ = _kept_paragraphs(text, boilerplate)
    words, lead = _words_and_lead(line_words, lead_words)
    facts = [_paragraph_facts(line, shingle_size) for line in lines]
    line_figures = tuple(fact.figures for fact in facts)
    line_names = tuple(fact.names for fact in facts)
    prose = [fact for fact in facts if fact.prose]
    if sum(fact.words for fact in prose) < _MIN_PROSE_WORDS:
        prose = facts
    return PreparedText(
        lines=tuple(lines),
        line_keys=tuple(keys),
        words=tuple(words),
        shingles=_body_shingles(words, line_words, facts, shingle_size),
        lead_shingles=tuple(shingles(lead, shingle_size)),
        figures=frozenset().union(*line_figures),
        names=frozenset().union(*line_names),
        skeleton_shingles=frozenset().union(*(fact.skeleton_shingles for fact in facts)),
        skeleton_lines=frozenset(fact.skeleton for fact in facts),
        line_skeletons=tuple((fact.skeleton, fact.skeleton_shingles) for fact in facts),
        line_figures=line_figures,
        line_names=line_names,
        line_subjects=tuple(fact.subject for fact in facts),
        prose_short=frozenset().union(*(fact.short for fact in prose)),
        prose_unquoted=frozenset().union(*(fact.unquoted for fact in prose)),
        prose_slots=frozenset().union(*(fact.slots for fact in prose)),
    )


# Below this many words of prose, a text is judged on all its kept paragraphs.
_MIN_PROSE_WORDS = 20
# A prose paragraph: at least this many words, under these shares of figures and
# of capitalised words (datelines, bylines, price widgets and link lists are
# short, or mostly figures or names). Shape only, so any language and the
# ciphered dev set alike.
_MIN_PROSE_LINE_WORDS = 8
_MAX_PROSE_FIGURES = 0.3
_MAX_PROSE_CAPITALISED = 0.6
SHORT_SHINGLE = 3


def _body_shingles(
    words: Sequence[str],
    line_words: Sequence[Sequence[str]],
    facts: Sequence[_ParagraphFacts],
    size: int,
) -> frozenset[str]:
    """frozenset(shingles(words, size)), from each paragraph's own shingles (cached with
    its facts) and the few that span a paragraph break."""
    if len(words) <= size:
        return frozenset(shingles(words, size))
    spanning: list[str] = []
    end = 0
    for chunk in line_words[:-1]:
        end += len(chunk)
        # Shingles starting in the last size-1 words before the break.
        spanning.extend(
            " ".join(words[start : start + size])
            for start in range(max(0, end - size + 1), min(end, len(words) - size + 1))
        )
    return frozenset(spanning).union(*(fact.shingles for fact in facts))


@dataclass(frozen=True, slots=True)
class _ParagraphFacts:
    """What the verdict reads of one paragraph, whatever text it stands in."""

    figures: frozenset[str]
    # The shingles of its words that lie wholly inside it.
    shingles: frozenset[str]
    # The paragraph's words with figures masked as "#", and that form's shingles.
    skeleton: str
    skeleton_shingles: frozenset[str]
    names: frozenset[str]
    subject: frozenset[str]
    words: int
    prose: bool
    # Hashed shingles (see PreparedText.prose_short).
    short: frozenset[int]
    unquoted: frozenset[int]
    slots: frozenset[Slot]


# A copy shares most of its paragraphs with the text it was copied from, and both are
# prepared when they meet: what depends on one paragraph alone is worked out once.
# Over half of a preparation; ~10 KB a paragraph.
@functools.lru_cache(maxsize=2048)
def _paragraph_facts(line: str, shingle_size: int) -> _ParagraphFacts:
    chunk = _line_tokens(line)
    figures = frozenset(w for w in chunk if w[0].isdigit())
    skeleton = [("#" if w in figures else w) for w in chunk] if figures else chunk
    every = shingles(chunk, shingle_size)
    inside = frozenset(every if len(chunk) >= shingle_size else ())
    capitalised, opens, quoted = cased_tokens(line, len(chunk))
    # A name opening a sentence ("Texaco said ...") is what a template substitutes.
    named = (
        [
            mid or (first and word not in _OPENERS and word not in _NOT_NAMES)
            for word, mid, first in zip(chunk, capitalised, opens, strict=True)
        ]
        if True in opens
        else capitalised
    )
    count = len(chunk) or 1
    figure_count = sum(1 for word in chunk if word in figures) if figures else 0
    return _ParagraphFacts(
        figures=figures,
        shingles=inside,
        skeleton=" ".join(skeleton),
        skeleton_shingles=(
            inside
            if not figures and len(chunk) >= shingle_size
            else frozenset(shingles(skeleton, shingle_size))
        ),
        names=proper_names([line]),
        subject=subject_of(line) if len(chunk) >= _MIN_LEAD_LINE_WORDS else frozenset(),
        words=len(chunk),
        prose=len(chunk) >= _MIN_PROSE_LINE_WORDS
        and figure_count < _MAX_PROSE_FIGURES * count
        and sum(capitalised) < _MAX_PROSE_CAPITALISED * count,
        short=frozenset(map(hash, _word_tuples(chunk, SHORT_SHINGLE))),
        unquoted=frozenset(
            hash(shingle)
            for start, shingle in enumerate(every)
            if True not in quoted[start : start + shingle_size]
        )
        if True in quoted
        else frozenset(map(hash, every)),
        slots=frozenset(_slots(chunk, skeleton, named, shingle_size))
        if figures or True in named
        else frozenset(),
    )


def _word_tuples(words: Sequence[str], size: int) -> Iterable[tuple[str, ...]]:
    """shingles() as tuples of words, for hashing in this process only."""
    if len(words) <= size:
        return [tuple(words)] if words else []
    return zip(*(words[offset:] for offset in range(size)), strict=False)


def _slots(
    chunk: Sequence[str], skeleton: Sequence[str], capitalised: Sequence[bool], size: int
) -> Iterable[Slot]:
    """A Slot for each shingle of the paragraph with a figure or a name in it."""
    masked = [
        "N" if upper and word != "#" else word
        for word, upper in zip(skeleton, capitalised, strict=True)
    ]
    # Windows as tuples, hashed whole: a join per window cost half of this function.
    windows = zip(*(masked[offset:] for offset in range(size)), strict=False)
    figured = zip(*(skeleton[offset:] for offset in range(size)), strict=False)
    for start, (window, words) in enumerate(zip(windows, figured, strict=False)):
        if "#" not in window and "N" not in window:
            continue
        yield (
            hash(window),
            # The words with only the figures masked: equal when the names are.
            hash(words),
            tuple([word for word in chunk[start : start + size] if word[0].isdigit()])
            if "#" in words
            else (),
        )


# "Via Tradevane: ..." or "EXCLUSIVE: ..." glued in front of the first sentence.
_LABEL_PREFIX = re.compile(r"^\s*(?:[\w'\u2019&.-]+\s+){0,3}[\w'\u2019&.-]+:\s+")
_NAME_RUN = re.compile(r"[A-Z][\w&'\u2019.-]*(?:\s+(?:[A-Z][\w&'\u2019.-]*|&|of|de|van|von))*")


def subject_of(line: str) -> frozenset[str]:
    """Who the opening sentence is about: its first run of capitalised words.

    A wire dateline ("LONDON (Reuters) -") and a short label ("Via X:") are
    skipped, as are sentence openers ("The", "But") and honorifics.
    """
    opening = _SENTENCE_END.split(_DATELINE.sub("", line), maxsplit=1)[0]
    opening = _LABEL_PREFIX.sub("", opening, count=1)
    for match in _NAME_RUN.finditer(opening):
        words = [w for w in _name_words(match.group()) if w not in _NOT_NAMES]
        while words and words[0] in _OPENERS:
            words.pop(0)
        words = [w for w in words if w not in ("of", "de", "van", "von")]
        if words:
            return frozenset(words)
    return frozenset()


_SENTENCE_START = re.compile(r"(?:^|[.!?:;\"\u201c(]\s+|^\W+)(\w+)")
_CAPITALISED = re.compile(r"\b[A-Z][\w&'\u2019-]*")


_NAME_WORD = re.compile(r"[^\W\d_]+")


def _name_words(text: str) -> list[str]:
    """Case-folded words of a name; a light form of tokens() for capitalised runs."""
    return _NAME_WORD.findall(_APOSTROPHES.sub("", text).casefold())


# Capitalised only because they open a sentence.
_OPENERS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "after",
        "but",
        "by",
        "for",
        "from",
        "he",
        "her",
        "his",
        "however",
        "if",
        "in",
        "it",
        "its",
        "meanwhile",
        "on",
        "one",
        "she",
        "so",
        "that",
        "the",
        "their",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "we",
        "when",
        "while",
        "with",
        "yet",
        "analysts",
        "shares",
        "traders",
        "investors",
        "dealers",
        "officials",
        "prices",
    ]
)


# House styles add or drop honorifics ("Mr Xi") and currency prefixes ("US$");
# dates are the figures check's business.
_NOT_NAMES = frozenset(
    "mr mrs ms miss dr prof sir dame mx monday tuesday wednesday thursday friday saturday "
    "sunday january february march april may june july august september october november "
    "december jan feb mar apr jun jul aug sep sept oct nov dec us usd hk nz".split()
)
# "SINGAPORE, Nov 6 (Harbour Post) -" or "LONDON (Reuters) -": added by whoever carries it.
_DATELINE = re.compile(
    r"^\s*[A-Z][A-Z .'/-]{1,40}(?:,\s*[A-Za-z]{3,9}\.?\s+\d{1,2})?\s*(?:\([^)]{1,40}\))?"
    r"\s*[-\u2013\u2014]+\s*"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"\u201c])")


def proper_names(lines: Iterable[str]) -> frozenset[str]:
    """Capitalised words, case-folded: company, person and place names.

    A sentence's first word counts unless it is a common opener ("The", "But").
    Lines in capitals (headline style) are skipped: there every word is one.
    """
    names: set[str] = set()
    for line in lines:
        if line.isupper():
            continue
        openers = {m.start(1) for m in _SENTENCE_START.finditer(line)}
        for match in _CAPITALISED.finditer(line):
            words = _name_words(match.group())
            if match.start() in openers and words and words[0] in _OPENERS:
                continue
            names.update(word for word in words if word not in _NOT_NAMES)
    return frozenset(names)
