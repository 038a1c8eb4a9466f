"""Prepared bodies (aggregator.dedup.prepare) and the text helpers under them: tokens,
shingles, credit lines.

Every text here is written for these tests; names, firms and figures are fictional.
"""

from __future__ import annotations

import time

import pytest

from aggregator.dedup.prepare import prepare_body, signing_view
from aggregator.models import PreparedText
from aggregator.text import (
    credited_publishers,
    line_fingerprint,
    line_key,
    shingles,
    tokens,
)

SIZE = 5
LEAD = 60


def prepare(text: str, boilerplate: frozenset[str] = frozenset()) -> PreparedText:
    return prepare_body(text, boilerplate, shingle_size=SIZE, lead_words=LEAD)


# --- tokens() ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # currency prefixes of the same dollar figure
        ("US$38 million", "$38 million"),
        ("US $38 million", "$38 million"),
        ("A$38 million", "$38 million"),
        ("NZ$38 million", "$38 million"),
        ("HK$ 38 million", "$38 million"),
        ("S$38 million", "$38 million"),
        ("raised US$1.2 billion", "raised $1.2 billion"),
        # house styles of percent
        ("3.5 per cent", "3.5%"),
        ("3.5 percent", "3.5%"),
        ("3.5 pct", "3.5%"),
        ("3.5 Per Cent", "3.5 %"),
        ("3.5 PERCENT", "3.5pct"),
        # thousands separators
        ("1,200.50", "1200.50"),
        ("12,345,678", "12345678"),
        # apostrophes, straight and curly, are joined
        ("hasn\u2019t", "hasn't"),
        ("hasn't", "hasnt"),
        ("the bank\u2019s chief", "the bank's chief"),
        # NFKC and case-folding
        ("\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28", "fullwidth"),
        ("\ufb01nance", "finance"),
        ("STRASSE", "stra\u00dfe"),
        ("Caf\u00e9", "cafe\u0301"),
        ("\U0001d7cf\U0001d7d0 \U0001d401\U0001d428\U0001d427\U0001d41d", "12 bond"),
        ("REVENUE Rose", "revenue rose"),
        # spacing and punctuation do not matter
        ("rose  3.5%,\tto $38m.", "rose 3.5 pct to 38m"),
    ],
)
def test_tokens_equivalent_spellings(left: str, right: str) -> None:
    assert tokens(left) == tokens(right)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("US$38 million", ["38", "million"]),
        ("Revenue rose 3.5% to $1,200.50 million", "revenue rose 3.5 pct to 1200.50 million"),
        ("3.5 per cent", ["3.5", "pct"]),
        ("1,200.50", ["1200.50"]),
        ("a 1,000-tonne cargo", ["a", "1000", "tonne", "cargo"]),
        ("yields fell 3/16 of a point", ["yields", "fell", "3/16", "of", "a", "point"]),
        # One figure, as a wire writes a rate: "six pct" and "6-1/16 pct" differ.
        ("funds at 6-1/16 pct", ["funds", "at", "6-1/16", "pct"]),
        ("the 2026-27 season, 3-2 win", ["the", "2026", "27", "season", "3", "2", "win"]),
        ("hasn\u2019t", ["hasnt"]),
        ("$AAPL and $TSLA rallied", ["aapl", "and", "tsla", "rallied"]),
        ("EUR/USD slipped", ["eur", "usd", "slipped"]),
        ("USD/JPY at 151.20", ["usd", "jpy", "at", "151.20"]),
        ("Q2 EPS", ["q", "2", "eps"]),
        ("the 'Big Three' rating firms", ["the", "big", "3", "rating", "firms"]),
        ("seven ships, one waiting, twenty-two", ["7", "ships", "one", "waiting", "20", "2"]),
        ("snake_case_word", ["snake", "case", "word"]),
        ("", []),
        ("  \n\t ", []),
        ("--- *** ---", []),
    ],
)
def test_tokens(text: str, expected: list[str] | str) -> None:
    if isinstance(expected, str):
        expected = expected.split()
    assert tokens(text) == expected


def test_tokens_currency_prefix_after_the_article_a() -> None:
    assert tokens("secured a US$38 million loan") == tokens("secured a $38 million loan")


NASTY = [
    "",
    " ",
    "\x00",
    "\x00\x01\x02 revenue \x1b[31m",
    "\ud800",
    "abc\ud800def \udfff 3.5%",
    "\ud83d\ude80",  # surrogate pair spelled out as two code points
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 3.5%",
    "\u202eevil\u202c reversed",
    "\u05e9\u05dc\u05d5\u05dd 12,000.5 \u05e9\u05e7\u05dc",
    "\U0001f680\U0001f4c8 $TSLA to the moon \U0001f48e\U0001f64c",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "Z\u0334\u0321\u032aa\u0336l\u0337g\u0338o\u0335",
    "\ufeffBOM at the start",
    "\u200b\u200c\u200d\u2060",
    "\u0661\u0662\u0663\u066b\u0664\u0665 \u0645\u0644\u064a\u0648\u0646",
    "\ufdfa",  # NFKC expands this one character into eighteen
    "\U0010ffff\U000e0001\uf8ff",
    "\x7f\x80\x9f",
    "\u0130stanbul \u0131\u0307 \u01c5",
    "<script>alert(1)</script>&amp;",
    "'''''' ,,,,, ..... ////",
    "1," * 5000 + "1",
    "9" * 5000,
    "%" * 2000,
    "$" * 2000,
    "US$" * 2000,
    "per cent " * 2000,
    "\r\n\t\v\f" * 500,
    "a" * 100_000,
    "word " * 20_000,
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_tokens_never_raise(text: str) -> None:
    result = tokens(text)
    assert all(isinstance(token, str) and token and not token.isspace() for token in result)
    # Shingles are hashed as UTF-8, so no token may carry a lone surrogate.
    " ".join(result).encode("utf-8")


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_preparation_never_raises(text: str) -> None:
    line_fingerprint(text)
    prepared = prepare(text, frozenset({line_fingerprint("x")}))
    for shingle in prepared.shingles:
        shingle.encode("utf-8")
    credited_publishers(text, ["Harbor Ledger", "S&P Global", "\u0130\u015f Haber"])


def test_tokens_of_long_input_are_fast() -> None:
    text = "Revenue rose 3.5 per cent to US$1,200.50 million, the company said. " * 3000
    started = time.perf_counter()
    result = tokens(text)
    assert time.perf_counter() - started < 1.0
    assert result[:8] == ["revenue", "rose", "3.5", "pct", "to", "1200.50", "million", "the"]


# --- shingles() -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "size", "expected"),
    [
        ([], 5, []),
        (["alone"], 5, ["alone"]),
        (["rates", "held", "steady"], 5, ["rates held steady"]),
        (["a", "b", "c", "d", "e"], 5, ["a b c d e"]),
        (["a", "b", "c", "d", "e", "f"], 5, ["a b c d e", "b c d e f"]),
        (["a", "b", "c", "d"], 3, ["a b c", "b c d"]),
        (["a", "b", "c"], 1, ["a", "b", "c"]),
        (["a", "b", "a", "b", "a"], 2, ["a b", "b a", "a b", "b a"]),
    ],
)
def test_shingles(words: list[str], size: int, expected: list[str]) -> None:
    assert shingles(words, size) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_shingle_count(size: int) -> None:
    words = tokens(ARTICLE)
    result = shingles(words, size)
    assert len(result) == len(words) - size + 1
    assert all(len(s.split()) == size for s in result)
    assert result[0].split() == words[:size]
    assert result[-1].split() == words[-size:]


# --- prepare_body() ---------------------------------------------------------------------------

ARTICLE = "\n".join(
    [
        "Orla Pacific Bank reported a 9% rise in first-half net profit to NZ$412 million on "
        "Wednesday, as higher lending margins and a drop in bad-debt charges offset weaker fee "
        "income from its wealth management arm.",
        "The Auckland-based lender said its net interest margin widened to 2.41% from 2.28% a "
        "year earlier, while impairment charges fell by a third to NZ$38 million as fewer small "
        "businesses fell behind on their repayments.",
        "Chief financial officer Hemi Castellano said mortgage demand had started to recover in "
        "the second quarter after a slow start to the year, and that the bank expected credit "
        "growth of around 4% over the next twelve months.",
        "The board declared an interim dividend of 61 cents a share, up from 58 cents, payable "
        "in September. Shares in the bank were little changed in afternoon trade, having gained "
        "1,250 points less than the index over the past year.",
    ]
)

NEWSLETTER = "Sign up for the Harbor Ledger morning briefing"
BOILERPLATE = frozenset({line_fingerprint(NEWSLETTER), line_fingerprint("Share this article")})

WITH_CHROME = "\n".join(
    [
        "Share this article",
        ARTICLE.split("\n")[0],
        # the same line in other case and punctuation has the same fingerprint
        "SIGN UP for the Harbor Ledger Morning Briefing!",
        *ARTICLE.split("\n")[1:],
        NEWSLETTER,
    ]
)


def test_line_fingerprint_ignores_case_and_punctuation() -> None:
    assert line_fingerprint(NEWSLETTER) == line_fingerprint(
        "SIGN UP for the Harbor Ledger Morning Briefing!"
    )
    assert line_fingerprint(NEWSLETTER) != line_fingerprint(NEWSLETTER + " today")
    assert len(line_fingerprint(NEWSLETTER)) == 16
    assert line_key("Rose 3.5 per cent!") == "rose 3.5 pct"


def test_boilerplate_lines_are_removed() -> None:
    prepared = prepare(WITH_CHROME, BOILERPLATE)
    assert prepared.lines == tuple(ARTICLE.split("\n"))
    assert prepared.line_keys == tuple(line_fingerprint(line) for line in prepared.lines)
    assert "briefing" not in prepared.words
    assert "article" not in prepared.words
    assert prepared.shingles == prepare(ARTICLE).shingles


def test_without_boilerplate_every_line_is_kept() -> None:
    prepared = prepare(WITH_CHROME)
    assert len(prepared.lines) == 7
    assert "briefing" in prepared.words


def test_figures_are_collected() -> None:
    prepared = prepare(ARTICLE)
    # "twelve" is written as a word in the article: number words are figures too.
    assert prepared.figures == {
        "12",
        "9",
        "412",
        "2.41",
        "2.28",
        "38",
        "4",
        "61",
        "58",
        "1250",
    }
    assert "pct" in prepared.words
    assert all(word[0].isdigit() for word in prepared.figures)


@pytest.mark.parametrize(
    "header",
    [
        ["Source: DepositPhotos"],
        ["Updated 3 hours ago"],
        ["ORLA.NZ NZ$24.18 +0.6%"],
        ["Source: DepositPhotos", "Updated 3 hours ago", "ORLA.NZ NZ$24.18 +0.6%"],
        ["By Mereana Toki, Markets Reporter", "5 min read", "Banking"],
    ],
    ids=["credit", "stamp", "ticker", "all-three", "byline"],
)
def test_lead_skips_short_header_lines(header: list[str]) -> None:
    original = prepare(ARTICLE)
    copy = prepare("\n".join([*header, ARTICLE]))
    assert copy.lead_shingles == original.lead_shingles
    assert copy.shingles > original.shingles


def test_lead_is_lead_words_long() -> None:
    prepared = prepare(ARTICLE)
    assert len(prepared.lead_shingles) == LEAD - SIZE + 1
    assert prepared.lead_shingles[0] == "orla pacific bank reported a"
    assert set(prepared.lead_shingles) <= prepared.shingles


def test_lead_of_short_lines_only_falls_back_to_all_words() -> None:
    prepared = prepare("Markets closed.\nVeloria holiday today.")
    assert prepared.lead_shingles == ("markets closed veloria holiday today",)
    assert prepared.shingles == {"markets closed veloria holiday today"}


def test_empty_body() -> None:
    prepared = prepare("")
    assert prepared.lines == prepared.line_keys == prepared.words == ()
    assert prepared.shingles == frozenset()
    assert prepared.lead_shingles == ()
    assert prepared.figures == frozenset()


@pytest.mark.parametrize("text", [ARTICLE, WITH_CHROME, "Markets closed.", ""])
def test_preparing_prepared_lines_again_is_stable(text: str) -> None:
    once = prepare(text, BOILERPLATE)
    twice = prepare("\n".join(once.lines), BOILERPLATE)
    assert twice.lines == once.lines
    assert twice.shingles == once.shingles
    assert twice.lead_shingles == once.lead_shingles
    assert twice.figures == once.figures


def test_blank_lines_and_indentation_do_not_matter() -> None:
    spaced = "\n\n".join("   " + line + "  " for line in ARTICLE.split("\n"))
    assert prepare(spaced).shingles == prepare(ARTICLE).shingles
    assert prepare(spaced).lines == prepare(ARTICLE).lines


@pytest.mark.parametrize(
    "text",
    [ARTICLE, WITH_CHROME, "Markets closed.\nVeloria holiday today.", "", "\n\n  \n"],
)
@pytest.mark.parametrize("boilerplate", [frozenset(), BOILERPLATE])
def test_signing_view_is_what_prepare_body_signs(text: str, boilerplate: frozenset[str]) -> None:
    view = signing_view(
        text, boilerplate, shingle_size=SIZE, lead_words=LEAD, signed_shingle_size=3
    )
    prepared = prepare(text, boilerplate)
    assert view.lines == prepared.lines
    assert view.shingle_count == len(prepared.shingles)
    assert view.lead_shingles == tuple(
        shingle.encode("utf-8") for shingle in prepared.lead_shingles
    )
    every = {line_fingerprint(line) for line in text.split("\n") if line.strip()}
    assert view.paragraph_keys == every
    assert set(prepared.line_keys) == view.paragraph_keys - boilerplate


# --- credited_publishers() --------------------------------------------------------------------

PUBLISHERS = [
    "Harbor Ledger",
    "Northgate Wire",
    "Meridian Post",
    "S&P Global",
    "Yahoo! Finance",
    "C++ Daily",
    "(Paren) News",
    "Quay.Street",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Source: Harbor Ledger", {"Harbor Ledger"}),
        ("Source Harbor Ledger", {"Harbor Ledger"}),
        ("Source - Harbor Ledger", {"Harbor Ledger"}),
        ("Sources: Northgate Wire", {"Northgate Wire"}),
        ("SOURCE: HARBOR LEDGER", {"Harbor Ledger"}),
        ("source: harbor ledger", {"Harbor Ledger"}),
        ("Author Northgate Wire", {"Northgate Wire"}),
        ("Author: Meridian Post", {"Meridian Post"}),
        ("Courtesy of the Meridian Post", {"Meridian Post"}),
        ("Originally published on Harbor Ledger", {"Harbor Ledger"}),
        ("This article originally appeared on Yahoo! Finance.", {"Yahoo! Finance"}),
        ("Republished with permission from Northgate Wire.", {"Northgate Wire"}),
        ("(Northgate Wire) - Freight rates rose for a third week.", {"Northgate Wire"}),
        ("ROTTERDAM, July 23 (Northgate Wire) - Freight rates rose.", {"Northgate Wire"}),
        ("Freight rates rose for a third week. - Harbor Ledger", {"Harbor Ledger"}),
        ("Freight rates rose for a third week. \u2014 Meridian Post.", {"Meridian Post"}),
        ("Tessaly lifts outlook\nNorthgate Wire\nFreight rates rose.", {"Northgate Wire"}),
        ("Meridian Post", {"Meridian Post"}),
        ("Source: S&P Global", {"S&P Global"}),
        ("Source: C++ Daily", {"C++ Daily"}),
        ("Via C++ Daily", {"C++ Daily"}),
        ("Source: (Paren) News", {"(Paren) News"}),
        ("Source: Quay.Street", {"Quay.Street"}),
        (
            "Source: Harbor Ledger\nFreight rates rose.\nOriginally published on Meridian Post",
            {"Harbor Ledger", "Meridian Post"},
        ),
        # prose mentions are not credits
        ("According to Harbor Ledger, freight rates rose for a third week.", set()),
        ("Harbor Ledger shares fell 3% on Monday after the results.", set()),
        ("The Meridian Post index of shipping costs rose 2% in July.", set()),
        ("Analysts at S&P Global said the outlook for the sector was stable.", set()),
        ("QuayXStreet rose", set()),  # "." in a name is not a wildcard
        ("Source: Harbor Ledgers Weekly", set()),
        ("A Sourcebook for Harbor Ledger readers", set()),
        ("", set()),
    ],
)
def test_credited_publishers(text: str, expected: set[str]) -> None:
    assert credited_publishers(text, PUBLISHERS) == expected


def test_credited_publishers_returns_names_as_given() -> None:
    assert credited_publishers("Source: Harbor Ledger", ["harbor LEDGER"]) == {"harbor LEDGER"}
    assert credited_publishers("SOURCE: S&P GLOBAL", ["S&P Global"]) == {"S&P Global"}


def test_credited_publishers_among_thousands_of_names() -> None:
    # Names are looked up by their first word: names sharing it, names whose first
    # word is elsewhere in the text and a name without any word must all still work.
    names = [f"Harbor Site {n}" for n in range(3000)] + ["Harbor Ledger", "$^", "Ledger"]
    text = "Ledger rates rose.\nSource: Harbor Ledger\nSource: $^\nSource: Harbor Site 2999"
    assert credited_publishers(text, names) == {"Harbor Ledger", "$^", "Harbor Site 2999"}
    assert credited_publishers(text, tuple(names)) == credited_publishers(text, names)


def test_credited_publishers_prefers_the_longest_name() -> None:
    names = ["Harbor", "Harbor Ledger"]
    assert credited_publishers("Source: Harbor Ledger", names) == {"Harbor Ledger"}
    assert credited_publishers("Source: Harbor", names) == {"Harbor"}


@pytest.mark.parametrize(
    ("text", "publishers"),
    [
        ("", PUBLISHERS),
        ("Source: Harbor Ledger", []),
        ("Source: Harbor Ledger", ["", "   "]),
        ("", []),
    ],
)
def test_credited_publishers_empty_inputs(text: str, publishers: list[str]) -> None:
    assert credited_publishers(text, publishers) == frozenset()


def test_credited_publishers_with_regex_metacharacters_only_names() -> None:
    odd = ["*", "a|b", "[x]", "(?P<name>x)", "\\d+", "$^"]
    assert credited_publishers("Source: a|b\nSource: [x]", odd) == {"a|b", "[x]"}
    assert credited_publishers("Revenue rose 12 pct on Monday", odd) == frozenset()


def test_credited_publishers_dotless_i_does_not_raise() -> None:
    assert credited_publishers("Source: Yap\u0131 Kredi Haber", ["Yapi Kredi Haber"]) == {
        "Yapi Kredi Haber"
    }


def test_credited_publishers_copyright_sign() -> None:
    assert credited_publishers("\u00a9 Harbor Ledger 2026", PUBLISHERS) == {"Harbor Ledger"}


def test_credited_publishers_by_in_running_prose() -> None:
    text = "The bonds were downgraded by S&P Global last week, and yields rose 40 basis points."
    assert credited_publishers(text, PUBLISHERS) == frozenset()
