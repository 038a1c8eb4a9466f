"""Text helpers shared by the stages: HTML -> clean text, canonical URLs.

Standard library only and pure, so any stage may call it; it never raises on
odd input because it runs on untrusted feed content.
"""

from __future__ import annotations

import functools
import hashlib
import html
import itertools
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aggregator.models import PreparedText, SigningView

# Query parameters that only identify the campaign or click, never the resource.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "cmpid",
        "ncid",
        "ocid",
        "sr_share",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """A comparable form of an article URL.

    Lower-case scheme and host, no default port, no fragment, no tracking
    parameters, remaining parameters sorted. Returns None for empty input and
    the stripped input when it cannot be split as a URL.
    """
    if url is None:
        return None
    text = "".join(ch for ch in url if ch >= " " and ch != "\x7f").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return text
    host = parts.hostname.lower().rstrip(".")
    if not host:
        return text
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    # Existing escapes are kept as they are ("%2F" is not "/"); only characters
    # that must be escaped are, so the result is stable under a second pass.
    path = _quote(parts.path) or "/"
    pairs = sorted(
        _quote(pair)
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote(pair.split("=", 1)[0]))
    )
    return urlunsplit((scheme, host, path, "&".join(pairs), ""))


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


def _quote(text: str) -> str:
    """RFC 3986 normalisation: escapes of unreserved characters decoded, hex upper-cased."""
    quoted = quote(text, safe="/:@!$&'()*+,;=-._~%?", errors="surrogatepass")
    return _ESCAPE.sub(_normal_escape, quoted)


# Elements whose text is never article prose.
_SKIP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "iframe",
        "object",
        "embed",
        "template",
        "svg",
        "math",
        "head",
        "title",
        "button",
        "select",
        "textarea",
        "form",
    }
)
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "param",
    }
)
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
        "caption",
        "tbody",
        "thead",
        "tfoot",
    }
)
_OTHER_SPACE_CHARS = (
    "\t\f\v\u00a0" + "".join(map(chr, range(0x2000, 0x200C))) + "\u202f\u205f\u3000"
)
_OTHER_SPACE = f"[{_OTHER_SPACE_CHARS}]"
# Runs of spaces other than a lone " ": replacing every single space as well cost
# half the time of cleaning a text.
_SPACE_RUNS = re.compile(rf"(?: |{_OTHER_SPACE})(?: |{_OTHER_SPACE})+|{_OTHER_SPACE}")
_SOURCE_BREAKS = re.compile(r"[\r\n]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self.pre_depth += 1
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in _SKIP:
            if tag not in _VOID and self.skip_depth:
                self.skip_depth -= 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            # In HTML a line break in the source is just a space, except in <pre>.
            self.parts.append(data if self.pre_depth else _SOURCE_BREAKS.sub(" ", data))


# Control characters (Cc, but tab and newline), surrogates (Cs) and private-use code
# points (Co): one regex instead of a per-character category lookup.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff"
    "\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
)


def _strip_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


def normalize_space(text: str) -> str:
    """One space between words, one newline between paragraphs, no control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Both tests scan the text as C loops; the regexes they spare look up each
    # character's class, and most texts hold no control and no run of spaces.
    if text.isascii():
        # The ASCII controls are the unprintable characters but for \t and \n.
        controls = not text.replace("\n", "").replace("\t", "").isprintable()
    else:
        controls = _CONTROLS.search(text) is not None
    if controls:
        text = _strip_controls(text)
    if "  " in text or any(space in text for space in _OTHER_SPACE_CHARS):
        text = _SPACE_RUNS.sub(" ", text)
    return "\n".join(line for line in (part.strip() for part in text.split("\n")) if line)


# What an HTML parser would read as markup in text: a tag, comment or declaration
# opening, or a character reference that decodes to something else.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_CHAR_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")


def _is_live_ref(match: re.Match[str]) -> bool:
    return html.unescape(match.group()) != match.group()


def _has_markup(text: str) -> bool:
    if "<" in text and _TAG_OPEN.search(text):
        return True
    return "&" in text and any(_is_live_ref(m) for m in _CHAR_REF.finditer(text))


def _defuse(text: str) -> str:
    """Text that stays text when someone renders it as HTML or cleans it again.

    A feed that escapes its markup twice (`&amp;lt;script&amp;gt;`) leaves
    `<script>` in the text after one decoding; such an opening `<` becomes the
    full-width less-than (U+FF1C) and a live `&` reference the full-width
    ampersand (U+FF06), so the stored text holds no markup and cleaning it a
    second time changes nothing.
    """
    if "<" in text:
        text = _TAG_OPEN.sub("\uff1c", text)
    if "&" in text:
        text = _CHAR_REF.sub(
            lambda m: "\uff06" + m.group()[1:] if _is_live_ref(m) else m.group(), text
        )
    return text


def plain_text(text: str | None) -> str:
    """A feed's plain-text field (not HTML) as stored text: spaces normalised, defused."""
    return _defuse(normalize_space(text or ""))


# A start or end tag in the plainest form: a name of letters and digits, attributes
# with quoted or bare values. What feedparser's sanitiser writes is all like this.
_PLAIN_TAG = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9]*)"
    r"((?:\s+[^\s\"'>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*(/?)>"
)


def _plain_markup_text(html_text: str) -> str | None:
    """What _TextExtractor makes of markup made only of plain tags, without html.parser.

    2.7x faster on the shared corpus's feed markup, 1.35x on long plain paragraphs.

    None when the fragment holds anything else (comments, declarations, a stray
    "<", <pre>, elements whose text is skipped): those go to the full parser.
    """
    parts: list[str] = []
    position = 0
    for tag in _PLAIN_TAG.finditer(html_text):
        data = html_text[position : tag.start()]
        if "<" in data:
            return None
        if data:
            # As the parser hands data over: references decoded, source line breaks spaces.
            parts.append(_SOURCE_BREAKS.sub(" ", html.unescape(data)))
        position = tag.end()
        closing, name, attributes, empty = tag.groups()
        name = name.lower()
        if name in _SKIP or name == "pre" or (closing and (attributes or empty)):
            return None
        if name in _BLOCK:
            parts.append("\n")
    rest = html_text[position:]
    if "<" in rest:
        return None
    parts.append(_SOURCE_BREAKS.sub(" ", html.unescape(rest)))
    return "".join(parts)


def html_to_text(html_text: str | None) -> str:
    """Readable text of an HTML fragment: paragraphs on their own lines, no markup."""
    if not html_text:
        return ""
    if not _has_markup(html_text):
        text = normalize_space(html_text)
        # Removing control characters can join a tag ("<\x1f?" -> "<?").
        return _defuse(text) if _has_markup(text) else text
    plain = _plain_markup_text(html_text)
    if plain is not None:
        return _defuse(normalize_space(plain))
    extractor = _TextExtractor()
    try:
        extractor.feed(html_text)
        extractor.close()
    except Exception:  # html.parser may fail on hostile markup; keep what we have
        pass
    return _defuse(normalize_space("".join(extractor.parts)))


def single_line(text: str | None) -> str:
    """Text for titles and names: markup removed and all whitespace collapsed to spaces."""
    return " ".join(html_to_text(text).split())


# -- preparation for near-duplicate detection ------------------------------------

# Currency signs and house-style spellings of "per cent" are dropped or unified so
# that a licensed re-edit ("US$38 million", "3.5 per cent") still shares word
# sequences and figures with the original ("$38 million", "3.5%").
_APOSTROPHES = re.compile("(?<=\\w)['\u2019](?=\\w)")
# Case-sensitive, applied before case folding: "A$5" is Australian, "a $5" is English.
_CURRENCY_PREFIX = re.compile(r"\b(?:U\.?S|USD|AUD?|A|C|CA|NZ|HK|S|SG|us)\s?\$")
_PERCENT = re.compile(r"\b(?:per\s?cent|pct)\b|%")
_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*|[^\W\d_]+")
# The same on ASCII text, where it runs twice as fast: the Unicode classes cost a
# table lookup per character. After case folding, ASCII letters are lower case.
_ASCII_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:[.,/][0-9]+)*")
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


def is_figure(token: str) -> bool:
    return token[:1].isdigit()


def shingles(words: Sequence[str], size: int) -> list[str]:
    """Word n-grams; a text shorter than `size` words is one shingle."""
    if not words:
        return []
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


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
    text: str, boilerplate: frozenset[str], *, shingle_size: int, lead_words: int
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
        shingles=frozenset(shingles(words, shingle_size)),
        lead_shingles=tuple(shingles(lead, shingle_size)),
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
    )


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


# A copy shares most of its paragraphs with the text it was copied from, and both are
# prepared when they meet: what depends on one paragraph alone is worked out once.
# Over half of a preparation; ~10 KB a paragraph.
@functools.lru_cache(maxsize=2048)
def _paragraph_facts(line: str, shingle_size: int) -> _ParagraphFacts:
    chunk = _line_tokens(line)
    figures = frozenset(w for w in chunk if w[0].isdigit())
    skeleton = [("#" if w in figures else w) for w in chunk] if figures else chunk
    inside = frozenset(shingles(chunk, shingle_size) if len(chunk) >= shingle_size else ())
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


_HREF = re.compile(r"""href\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)


def site_host(url: str | None) -> str | None:
    """A URL's host, lower-case, without "www." (the part sites are compared by)."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def link_hosts(html: str) -> frozenset[str]:
    """Hosts of the http(s) links in an HTML fragment."""
    return frozenset(h for h in (site_host(m) for m in _HREF.findall(html or "")) if h)
