"""Which followed publishers a text credits as its source."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable

from aggregator.text.tokens import _WORD_RUN, word_set

# "by" and "via" credit only at the start of a line: mid-sentence they are prose
# ("downgraded by S&P Global").
_CREDIT_PREFIX = (
    r"(?:\b(?:source|sources|author|authors|credit|credits|courtesy(?:\s+of)?|"
    r"(?:originally\s+)?(?:published|appeared|posted)\s+(?:on|in|by|at)|"
    r"republished\s+(?:from|with\s+permission\s+(?:of|from))|reporting\s+by|copyright)"
    r"|^\s*(?:by|via)|\u00a9)"
)


# Letters that re.IGNORECASE matches to a plain one but casefold() keeps apart.
_IGNORECASE_TWINS = str.maketrans({"\u0131": "i", "\u017f": "s"})


@functools.lru_cache(maxsize=4096)
def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().translate(_IGNORECASE_TWINS)


@functools.lru_cache(maxsize=256)
def _credit_pattern(names: tuple[str, ...]) -> tuple[dict[str, str], re.Pattern[str]]:
    """One compiled pattern per publisher list; the list changes only with the config."""
    by_fold = {unicodedata.normalize("NFKC", n).casefold(): n for n in names}
    alternatives = "|".join(re.escape(n) for n in by_fold)
    name = rf"(?P<name>{alternatives})"
    pattern = re.compile(
        rf"(?:{_CREDIT_PREFIX}\s*[:\-\u2013\u2014]?\s*(?:the\s+)?{name}(?![\w])"
        rf"|\(\s*{name.replace('name', 'wire')}\s*\)"
        rf"|^\s*(?:[-\u2013\u2014]\s*)?{name.replace('name', 'line')}\s*\.?\s*$"
        rf"|[-\u2013\u2014]\s*{name.replace('name', 'tail')}\s*\.?\s*$)",
        re.IGNORECASE | re.MULTILINE,
    )
    return by_fold, pattern


@functools.lru_cache(maxsize=64)
def _publisher_index(
    publishers: tuple[str, ...],
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Publishers by the first word of their folded name, and those with no word at all."""
    by_first_word: dict[str, list[str]] = {}
    wordless: list[str] = []
    for name in publishers:
        if not name.strip():
            continue
        first = _WORD_RUN.search(_fold(name))
        if first is None:
            wordless.append(name)
        else:
            by_first_word.setdefault(first.group(), []).append(name)
    return {word: tuple(names) for word, names in by_first_word.items()}, tuple(wordless)


def credited_publishers(text: str, publishers: Iterable[str]) -> frozenset[str]:
    """Publishers (from `publishers`) that `text` credits as its source.

    Recognises credit lines ("Source: X", "Author X", "Originally published on
    X"), wire tags ("(Reuters)"), a trailing "- X" sign-off and a line that
    is only the name, as syndicators print the origin under the headline.
    Matching is case-insensitive; the names come back as given.
    """
    if not text:
        return frozenset()
    folded = unicodedata.normalize("NFKC", text).casefold()
    loose = folded.translate(_IGNORECASE_TWINS)
    # The pattern alternates over every followed publisher; most texts name none of
    # them, and those that do name few, so match only against the names present.
    # A name is looked for only when its first word is a word of the text: with a
    # thousand publishers, a substring search for each cost more than the rest of
    # an item's preparation.
    by_first_word, wordless = _publisher_index(
        publishers if isinstance(publishers, tuple) else tuple(publishers)
    )
    present = word_set(loose).intersection(by_first_word)
    names = tuple(
        sorted(
            {
                p
                for p in itertools.chain(wordless, *(by_first_word[w] for w in present))
                if _fold(p) in loose
            },
            key=len,
            reverse=True,
        )
    )
    if not names:
        return frozenset()
    by_fold, pattern = _credit_pattern(names)
    found: set[str] = set()
    for match in pattern.finditer(folded):
        hit = next(value for value in match.groupdict().values() if value)
        # IGNORECASE also matches pairs casefold keeps apart (dotless i): look it up.
        found.add(
            by_fold.get(hit)
            or next(n for f, n in by_fold.items() if re.fullmatch(re.escape(f), hit, re.IGNORECASE))
        )
    return frozenset(found)
