"""Words as the near-duplicate check counts them: tokens, shingles, paragraph keys."""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import string
import unicodedata
from collections.abc import Sequence

# Currency signs and house-style spellings of "per cent" are dropped or unified so
# that a licensed re-edit ("US$38 million", "3.5 per cent") still shares word
# sequences and figures with the original ("$38 million", "3.5%").
_APOSTROPHES = re.compile("(?<=\\w)['\u2018\u2019\u02bc\u2032](?=\\w)")
# Case-sensitive, applied before case folding: "A$5" is Australian, "a $5" is English.
_CURRENCY_PREFIX = re.compile(r"\b(?:U\.?S|USD|AUD?|A|C|CA|NZ|HK|S|SG|us)\s?\$")
_PERCENT = re.compile(r"\b(?:per\s?cent|pct)\b|%")
_TOKEN = re.compile(r"\d+(?:-\d+/\d+)?(?:[.,/]\d+)*|[^\W\d_]+")
# The same on ASCII text, where it runs twice as fast: the Unicode classes cost a
# table lookup per character. After case folding, ASCII letters are lower case.
_ASCII_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:-[0-9]+/[0-9]+)?(?:[.,/][0-9]+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _normal_number(token: str) -> str:
    if _THOUSANDS.fullmatch(token):
        return token.replace(",", "")
    return token.replace(",", ".")


# Small numbers written as words are figures too: a daily "five grain ships loading"
# report differs from the next one only there. "one" is left alone: it is mostly a pronoun.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
    if word != "_"
} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90",
}  # fmt: skip


def tokens(text: str) -> list[str]:
    """Words and numbers of `text`, NFKC-normalised and case-folded.

    Numbers keep their decimals ("1.20", "3/16") and lose thousands separators,
    so they can be compared as figures; "%" and "per cent" both become "pct";
    number words from two to twenty and the tens become digits.
    """
    return list(_line_tokens(text))


# Paragraphs are tokenised several times per item (boilerplate learning, preparation,
# and again when the item is a candidate for a later one): remember recent ones. A
# poll's batch is a few hundred paragraphs; each entry holds ~4 KB.
@functools.lru_cache(maxsize=8192)
def _line_tokens(text: str) -> tuple[str, ...]:
    folded = unicodedata.normalize("NFKC", text)
    # Each pattern costs a full scan; most paragraphs contain none of their triggers.
    if "$" in folded:
        folded = _CURRENCY_PREFIX.sub("$", folded)
    folded = folded.casefold()
    if "'" in folded or "\u2019" in folded:
        folded = _APOSTROPHES.sub("", folded)
    if "%" in folded or "per" in folded or "pct" in folded:
        folded = _PERCENT.sub(" pct ", folded)
    words = (_ASCII_TOKEN if folded.isascii() else _TOKEN).findall(folded)
    # Per-token Python work only where a paragraph needs it: most have no number with
    # a separator and no number word.
    if "," in folded:
        words = [_normal_number(word) if "," in word else word for word in words]
    if not _NUMBER_WORDS.keys().isdisjoint(words):
        number_words = _NUMBER_WORDS
        words = [number_words.get(word, word) for word in words]
    return tuple(words)


# Typographic quotes as plain double quotes, for telling quoted words apart.
_QUOTES = str.maketrans(dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'))
# tokens()'s words and numbers, plus the quotes and sentence ends between them.
_CASED_TOKEN = re.compile(r'\d+(?:-\d+/\d+)?(?:[.,/]\d+)*|[^\W\d_]+|["!?]|\.(?!\d)')


def cased_tokens(
    line: str, count: int
) -> tuple[tuple[bool, ...], tuple[bool, ...], tuple[bool, ...]]:
    """For each of the `count` tokens() of `line`: is it a capitalised word that does
    not open a sentence (a name, most likely), a capitalised word that does (a name
    or an opener: the caller knows which), inside double quotes. All False where the
    two tokenisations do not line up."""
    folded = unicodedata.normalize("NFKC", line).translate(_QUOTES)
    if "$" in folded:
        folded = _CURRENCY_PREFIX.sub("$", folded)
    folded = _APOSTROPHES.sub("", folded)
    if "%" in folded or "per" in folded.casefold() or "pct" in folded.casefold():
        folded = _PERCENT.sub(" pct ", folded)
    capitalised: list[bool] = []
    opens: list[bool] = []
    quoted: list[bool] = []
    inside = False
    opening = True
    for token in _CASED_TOKEN.findall(folded):
        if token == '"':
            inside = not inside
            continue
        if token in ".!?":
            opening = True
            continue
        upper = token[0].isupper()
        capitalised.append(upper and not opening)
        opens.append(upper and opening)
        quoted.append(inside)
        opening = False
    if len(capitalised) != count:
        return (False,) * count, (False,) * count, (False,) * count
    return tuple(capitalised), tuple(opens), tuple(quoted)


def is_figure(token: str) -> bool:
    return token[:1].isdigit()


def shingles(words: Sequence[str], size: int) -> list[str]:
    """Word n-grams; a text shorter than `size` words is one shingle."""
    if not words:
        return []
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


def distinct_shingles(words: Sequence[str], size: int) -> int:
    """len(set(shingles(words, size))), without joining a string per shingle."""
    if len(words) <= size:
        return 1 if words else 0
    # The shorter slices end the tuples: each is one shingle.
    return len(set(zip(*(words[start:] for start in range(size)), strict=False)))


def encoded_shingles(words: Sequence[str], size: int) -> list[bytes]:
    """[s.encode("utf-8") for s in shingles(words, size)], for hashing.

    Cut from the words joined and encoded once: a join and an encode per shingle
    cost a third more.
    """
    if not words:
        return []
    joined = " ".join(words).encode("utf-8")
    if len(words) <= size:
        return [joined]
    lengths = (
        [len(word) for word in words]
        if joined.isascii()
        else [len(word.encode("utf-8")) for word in words]
    )
    # Byte offset where each word starts (and one past the end of the last).
    starts = list(itertools.accumulate(lengths, lambda at, length: at + length + 1, initial=0))
    return [joined[start : end - 1] for start, end in zip(starts, starts[size:], strict=False)]


def line_key(line: str) -> str:
    """The form in which a paragraph is counted when learning a feed's boilerplate."""
    return " ".join(_line_tokens(line))


def _fingerprint(words: Sequence[str]) -> str:
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).hexdigest()


def paragraphs(text: str) -> list[str]:
    return [line for line in (part.strip() for part in text.split("\n")) if line]


def line_fingerprint(line: str) -> str:
    """A short stable id of a paragraph's words, for counting recurring lines."""
    return _fingerprint(_line_tokens(line))


_WORD_RUN = re.compile(r"\w+")
# ASCII punctuation ("_" is a word character): splitting prose at these and at spaces
# leaves mostly whole words, which str.isalnum() confirms in one pass.
_ASCII_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation.replace("_", ""), " "))


def word_set(text: str) -> set[str]:
    r"""The distinct runs of word characters in `text`: set(re.findall(r"\w+", text)).

    Twice as fast on prose as the regex, which looks up each character's class.
    """
    words = set(text.translate(_ASCII_PUNCTUATION).split())
    if "".join(words).isalnum():
        return words
    # Pieces holding "_", non-ASCII punctuation or symbols: split them properly.
    mixed = {word for word in words if not word.isalnum()}
    words -= mixed
    for piece in mixed:
        words.update(_WORD_RUN.findall(piece))
    return words
