"""aggregator.syndication and aggregator.dedup: copy verdicts, parents, candidate lookup.

Every text here is written for these tests; names, firms and figures are fictional.
Bodies go through the real `prepare_body` with no learned boilerplate and the
default `DedupSettings`, so the thresholds under test are the shipped ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.dedup.features import compare, identical, is_correction
from aggregator.dedup.index import CandidateIndex, Signature, Signer, band_keys, band_layout
from aggregator.dedup.place import Match, choose_parent, credits_between, earlier, relation
from aggregator.dedup.prepare import prepare_body
from aggregator.models import Comparison, DedupSettings, Member, PreparedText, Relation
from tests.verdicts import is_copy

SETTINGS = DedupSettings()
SIZE = SETTINGS.shingle_size


def prep(text: str) -> PreparedText:
    return prepare_body(text, frozenset(), shingle_size=SIZE, lead_words=SETTINGS.lead_words)


def body(*paragraphs: str) -> str:
    return "\n".join(paragraphs)


# --- the original article and its derivatives ------------------------------------------------

P1 = (
    "Tessaly Freight Holdings raised its full-year profit forecast on Tuesday after a surge "
    "in cross-border parcel volumes lifted second-quarter revenue by 14% to $2.31 billion, "
    "comfortably ahead of the average analyst estimate compiled by the company."
)
P2 = (
    "The Rotterdam-based logistics group now expects adjusted operating profit of between "
    "$410 million and $440 million for the year, up from a previous range of $365 million "
    "to $395 million. Its shares climbed 6.2% in early trading, their biggest one-day gain "
    "since the spring."
)
P3 = (
    "Chief executive Marisol Okafor-Lind said the company had benefited from retailers "
    "moving inventory closer to their customers ahead of the holiday season, and from a new "
    "contract with a large European online marketplace that began in April."
)
P4 = (
    '"We are seeing demand hold up better than we planned for, particularly in the lanes '
    'between the Netherlands, Germany and Poland," Okafor-Lind told analysts on a conference '
    'call. "Our network was built for exactly this kind of volume."'
)
P5 = (
    "Margins improved as well. The adjusted operating margin widened to 11.8% from 10.1% a "
    "year earlier, helped by cheaper diesel and by the closure of two loss-making depots in "
    "northern France during the first quarter."
)
P6 = (
    "Not every division kept pace. Revenue at the air freight unit fell 3% as shipping rates "
    "between Asia and Europe continued to soften, and management said it would review the "
    "unit's fleet of leased cargo aircraft before the end of the year, with a decision on "
    "returning some of the planes expected in the autumn."
)
P7 = (
    "Analysts at Fenwick Row Securities said the upgrade looked conservative given the "
    "strength of bookings in July. They raised their price target on the stock to 48 euros "
    "from 43 euros and kept their buy rating."
)
P8 = "Tessaly will publish its third-quarter results on October 29."

ORIGINAL = body(P1, P2, P3, P4, P5, P6, P7, P8)

# A feed that only carries the opening of the story.
SUMMARY = body(P1, P2)

# A syndicator's page: credit and stamp lines above, related links and a disclaimer below.
CHROME = body(
    "Source: Harbor Ledger",
    "Updated 2 hours ago",
    "TSF.AS +6.2%",
    ORIGINAL,
    "Related Articles",
    "Quillon Bank names new finance chief after surprise exit",
    "Author Dana Whitcombe",
    "Copper slides as warehouse stocks build in Shanghai",
    "Author Rafe Lindqvist",
    "Three dividend stocks that held up through the summer slump",
    "Author Priya Marchetti",
    "Why bond traders are watching the Veloria auction this week",
    "Author Tomasz Ekwueme",
    "The information on this page is provided for general purposes only and does not "
    "constitute investment advice. Past performance is not a reliable indicator of future "
    "results, and the value of investments can fall as well as rise.",
)


# The same article lightly re-edited by a licensee: a new headline and dateline, house
# style for currency and percentages, and one sentence cut from the second paragraph.
def light_edit(headline: str) -> str:
    return body(
        headline,
        "ROTTERDAM, July 23 - " + P1.replace("14%", "14 per cent").replace("$", "US$"),
        "The Rotterdam-based logistics group now expects adjusted operating profit of between "
        "US$410 million and US$440 million for the year, up from a previous range of US$365 "
        "million to US$395 million.",
        P3,
        P4,
        P5.replace("11.8%", "11.8 per cent").replace("10.1%", "10.1 per cent"),
        P6.replace("3%", "3 per cent"),
        P7,
        P8,
    )


LIGHT_EDIT = light_edit("Tessaly Freight lifts outlook as cross-border parcel boom continues")
# The same edit under a headline that opens with a common word.
LIGHT_EDIT_PARCEL = light_edit("Parcel boom lets Tessaly Freight lift its outlook for the year")

# A wire version: two background paragraphs added and two paragraphs swapped.
WIRE_EXTRA_1 = (
    "Tessaly was spun off from a Dutch conglomerate eleven years ago and has since expanded "
    "into eastern Europe through a string of small acquisitions, most of them regional "
    "trucking firms with fewer than two hundred vehicles."
)
WIRE_EXTRA_2 = (
    "The wider European freight sector has had a mixed year, with several rivals warning "
    "that weaker industrial output would weigh on pallet and container volumes into the "
    "winter months."
)
WIRE = body(P1, P2, P4, P3, WIRE_EXTRA_1, P5, P6, WIRE_EXTRA_2, P7, P8)

# A licensee's copy of LIGHT_EDIT (not of ORIGINAL): it carries LIGHT_EDIT's changes.
RECOPY = body("Source: Meridian Post", "Updated 40 minutes ago", LIGHT_EDIT)

# The same facts told in other words.
PARAPHRASE = body(
    "Shares in Tessaly Freight Holdings jumped on Tuesday when the Dutch parcel carrier "
    "told investors it would earn more this year than it had previously thought.",
    "Second-quarter sales came in at $2.31 billion, a rise of 14%, as online retailers "
    "shipped more goods across European borders. Management lifted its guidance for "
    "adjusted operating profit to a range of $410 million to $440 million.",
    "Marisol Okafor-Lind, who runs the company, credited a marketplace contract signed in "
    "the spring and a push by shops to keep stock nearer to shoppers before Christmas. "
    "She said routes linking Dutch, German and Polish cities were especially busy.",
    "Profitability also got better, with the margin on an adjusted basis reaching 11.8%. "
    "Fuel was cheaper and two French depots that had been losing money were shut earlier "
    "in the year.",
    "The picture was weaker in air cargo, where sales slipped 3% because rates on routes "
    "from Asia kept falling. The firm is looking again at the aircraft it leases. Brokers "
    "at Fenwick Row Securities now see the stock reaching 48 euros.",
)


# --- templated reports ------------------------------------------------------------------------


def earnings_release(company: str, quarter: str, figures: tuple[str, ...]) -> str:
    income, eps, prior, prior_eps, growth, revenue, cash, call_day = figures
    return body(
        f"{company} reported {quarter} net income of ${income} million, or {eps} cents per "
        f"share, compared with ${prior} million, or {prior_eps} cents per share, in the same "
        f"period a year earlier. Revenue rose {growth}% to ${revenue} million.",
        f"The company ended the quarter with cash and equivalents of ${cash} million and no "
        "borrowings drawn under its revolving credit facility.",
        "Management will discuss the results on a conference call with analysts and "
        f"investors on {call_day} at 8:30 a.m. Eastern time. A replay of the call will be "
        "available on the investor relations section of the company's website for thirty "
        "days after the event.",
        "This release contains forward-looking statements that are subject to risks and "
        "uncertainties, including changes in customer demand, the cost and availability of "
        "raw materials, competition, and general economic conditions. Actual results may "
        "differ materially from those expressed or implied in such statements, and the "
        "company undertakes no obligation to update them except as required by law.",
    )


EARNINGS_A = earnings_release(
    "Brackenridge Tools Inc",
    "second-quarter",
    ("41.6", "52", "37.9", "47", "8.4", "612.3", "188.5", "August 6"),
)
EARNINGS_B = earnings_release(
    "Oskarsson Medical Devices",
    "third-quarter",
    ("17.2", "23", "20.4", "28", "2.9", "240.7", "96.1", "November 4"),
)


def repo_report(day: str, amount: str, rate: str, total: str, bids: str) -> str:
    return body(
        f"The central bank added {amount} billion through overnight repurchase agreements at "
        f"{rate} pct on {day}, the Monetary Authority of Veloria said in its daily market "
        "operations statement.",
        f"Eligible counterparties submitted {bids} bids in the operation, which was settled "
        "the same day against government securities and agency debt held in custody at the "
        "authority. Total outstanding liquidity provided through open market operations stood "
        f"at {total} billion at the close of business.",
        "The authority conducts these operations to keep the overnight interbank rate close to "
        "its policy target and to smooth temporary swings in banking system reserves caused by "
        "tax payments, government spending and currency movements.",
        "The next scheduled operation will be announced before the market opens on the "
        "following business day. Details of the accepted collateral and the allotment "
        "procedure are published in the operations section of the authority's website.",
    )


REPO_MONDAY = repo_report("Monday", "4.5", "3.85", "61.2", "eleven")
REPO_TUESDAY = repo_report("Tuesday", "6.25", "3.90", "63.7", "eleven")


def fund_flows(equity_in: str) -> str:
    return body(
        "Investors put money into equity funds for a third straight week, according to "
        "weekly figures from the fictional Lanthorn Fund Monitor published on Friday.",
        f"Equity funds drew net inflows of {equity_in} billion in the week, while bond funds "
        "took in 3.1 billion and money market funds saw outflows of 12.8 billion as "
        "companies drew on cash to meet quarterly tax payments.",
        "Within equities, funds focused on emerging markets attracted 1.7 billion, the most "
        "since the start of the year, and technology sector funds added 0.9 billion. Funds "
        "investing in European shares lost 2.2 billion, their sixth weekly outflow in a row.",
        "Inflation-protected bond funds gained 0.4 billion, and high-yield bond funds took in "
        "1.3 billion after three weeks of redemptions. Gold funds recorded outflows of 0.6 "
        "billion as bullion prices eased from a record.",
        "The data covered 41 fund groups with combined assets under management of roughly "
        "nine trillion, and the monitor said weekly figures are often revised as late reports "
        "arrive from smaller managers.",
    )


FLOWS = fund_flows("8.6")
FLOWS_CORRECTED = fund_flows("6.8")


# --- same event, independent stories ----------------------------------------------------------

SHARED_QUOTE = (
    '"Inflation is coming down, but it is not coming down fast enough for us to declare '
    'victory, and we would rather be late than wrong when we start to ease policy," '
    "Governor Ilse Marangoni said."
)
STORY_ONE = body(
    "The Monetary Authority of Veloria left its benchmark rate unchanged at 4.25 pct on "
    "Thursday, resisting pressure from exporters who have complained about the strength of "
    "the currency over the past six months.",
    "All seven members of the policy board voted to hold. Most economists surveyed before "
    "the decision had expected no change, although a handful had pencilled in a cut.",
    SHARED_QUOTE,
    "The currency edged higher after the announcement, and two-year government bond yields "
    "rose by about five basis points as traders pushed back their expectations for the first "
    "reduction to the spring.",
)
STORY_TWO = body(
    "Exporters in Veloria will have to wait longer for relief. The central bank kept "
    "borrowing costs on hold this week and gave no sign that a reduction was close, a blow "
    "to manufacturers who say the strong currency is costing them orders abroad.",
    "The chamber of commerce said in a statement that factories in the northern provinces "
    "had cut shifts and postponed hiring, and called for a clearer timetable from policy "
    "makers.",
    SHARED_QUOTE,
    "Some economists think the bank is being too cautious. Consumer prices rose at an annual "
    "pace of 3.1 pct last month, down from a peak of almost 9 pct two years ago, and wage "
    "growth has slowed in most sectors.",
)


# --- short items ---------------------------------------------------------------------------

SHORT_HALT = "Trading in Pellam Mining shares was halted pending an announcement."
SHORT_HOLIDAY = "Veloria stock exchange closed on Friday for a public holiday."


# === compare() ===============================================================================


def test_compare_identical_texts() -> None:
    comparison = compare(prep(ORIGINAL), prep(ORIGINAL), SIZE)
    assert comparison.jaccard == 1.0
    assert comparison.containment == 1.0
    assert comparison.figures_missing == 0
    assert comparison.aligned is True
    assert comparison.shared == len(prep(ORIGINAL).shingles)


@pytest.mark.parametrize(
    "text", [ORIGINAL, SUMMARY, CHROME, WIRE, STORY_ONE, SHORT_HOLIDAY, FLOWS, ""]
)
def test_identical_is_compare_of_a_text_with_itself(text: str) -> None:
    prepared = prep(text)
    assert identical(len(prepared.shingles), len(prepared.figures)) == compare(
        prepared, prepared, SIZE
    )


def test_compare_summary_is_contained_and_aligned() -> None:
    comparison = compare(prep(SUMMARY), prep(ORIGINAL), SIZE)
    assert comparison.containment == pytest.approx(1.0)
    assert comparison.jaccard < SETTINGS.min_jaccard
    assert comparison.aligned is True
    assert comparison.figures_missing == 0


def test_compare_chrome_wrapped_copy_contains_the_article() -> None:
    comparison = compare(prep(CHROME), prep(ORIGINAL), SIZE)
    assert comparison.containment >= 0.9
    assert comparison.aligned is True
    assert comparison.jaccard < 1.0


def test_compare_quoted_middle_paragraph_is_not_aligned() -> None:
    comparison = compare(prep(P6), prep(ORIGINAL), SIZE)
    assert comparison.containment == pytest.approx(1.0)
    assert comparison.aligned is False


@pytest.mark.parametrize(
    ("left", "right"),
    [(SUMMARY, ORIGINAL), (CHROME, ORIGINAL), (WIRE, LIGHT_EDIT), (STORY_ONE, STORY_TWO)],
    ids=["summary", "chrome", "wire-edit", "stories"],
)
def test_compare_is_symmetric(left: str, right: str) -> None:
    assert compare(prep(left), prep(right), SIZE) == compare(prep(right), prep(left), SIZE)


def test_compare_empty_texts() -> None:
    empty = prep("")
    nothing = compare(empty, empty, SIZE)
    assert (nothing.jaccard, nothing.containment, nothing.shared) == (0.0, 0.0, 0)
    assert nothing.aligned is False
    assert compare(empty, prep(ORIGINAL), SIZE).containment == 0.0


def test_compare_counts_the_shorter_texts_figures_missing_from_the_longer() -> None:
    comparison = compare(prep(fund_flows("6.8")), prep(FLOWS), SIZE)
    # Ten written as digits, two as words ("three", "nine").
    assert comparison.figures == len(prep(FLOWS).figures) == 12
    assert comparison.figures_missing == 1
    assert compare(prep(SUMMARY), prep(ORIGINAL), SIZE).figures_missing == 0


# === is_copy() ===============================================================================


def verdict(a: str, b: str, *, correction: bool = False, same_headline: bool = False) -> bool:
    left, right = prep(a), prep(b)
    shorter = min(len(left.shingles), len(right.shingles))
    comparison = compare(left, right, SIZE)
    return is_copy(
        comparison, shorter, SETTINGS, correction=correction, same_headline=same_headline
    )


COPY_CASES = [
    pytest.param(ORIGINAL, ORIGINAL, True, id="verbatim"),
    pytest.param(SUMMARY, ORIGINAL, True, id="summary-vs-full"),
    pytest.param(CHROME, ORIGINAL, True, id="chrome-wrapped"),
    pytest.param(LIGHT_EDIT, ORIGINAL, True, id="light-edit"),
    pytest.param(
        LIGHT_EDIT_PARCEL,
        ORIGINAL,
        True,
        id="light-edit-headline-opens-with-common-word",
    ),
    pytest.param(WIRE, ORIGINAL, True, id="wire-inserts-and-swaps"),
    pytest.param(RECOPY, ORIGINAL, True, id="recopy-of-edit"),
    pytest.param(P6, ORIGINAL, False, id="quoted-paragraph"),
    pytest.param(EARNINGS_A, EARNINGS_B, False, id="templated-earnings"),
    pytest.param(REPO_MONDAY, REPO_TUESDAY, False, id="daily-operations-report"),
    pytest.param(STORY_ONE, STORY_TWO, False, id="same-event-shared-quote"),
    pytest.param(PARAPHRASE, ORIGINAL, False, id="paraphrase"),
    pytest.param(SHORT_HALT, SHORT_HOLIDAY, False, id="short-unrelated"),
    pytest.param(SHORT_HALT, SHORT_HALT, False, id="short-identical"),
    pytest.param(ORIGINAL, STORY_ONE, False, id="unrelated"),
]


@pytest.mark.parametrize(("a", "b", "expected"), COPY_CASES)
def test_is_copy(a: str, b: str, expected: bool) -> None:
    assert verdict(a, b) is expected
    assert verdict(b, a) is expected


@pytest.mark.parametrize(
    ("a", "b"),
    [(REPO_MONDAY, REPO_TUESDAY), (EARNINGS_A, EARNINGS_B)],
    ids=["operations-report", "earnings-release"],
)
def test_templated_reports_share_their_words_but_not_their_figures(a: str, b: str) -> None:
    """Word overlap alone would call these copies; the figures tell the issues apart."""
    comparison = compare(prep(a), prep(b), SIZE)
    assert comparison.containment >= SETTINGS.min_containment
    assert comparison.jaccard >= SETTINGS.min_jaccard
    assert comparison.figures_missing > comparison.figures // 2


def test_operations_report_for_another_day_is_not_a_correction() -> None:
    comparison = compare(prep(REPO_MONDAY), prep(REPO_TUESDAY), SIZE)
    assert comparison.aligned is True
    # Three of its four figures change; the "eleven" bids (a number word) do not.
    assert (comparison.figures_missing, comparison.figures) == (3, 4)
    # Not even a correction changes most figures.
    assert verdict(REPO_MONDAY, REPO_TUESDAY, correction=True) is False


def test_correction_with_one_changed_figure_is_a_copy() -> None:
    assert is_correction("CORRECTED: Equity funds draw inflows for third week")
    assert verdict(FLOWS_CORRECTED, FLOWS, correction=True) is True


# Figures of the weekly fund-flows report, changed one by one.
FLOW_CHANGES = [("8.6", "6.8"), ("3.1", "3.4"), ("12.8", "12.3"), ("41", "44")]


@pytest.mark.parametrize(
    ("changed", "correction", "expected"),
    [
        (0, False, True),
        (1, False, True),  # within the tolerance for 10 figures
        (1, True, True),
        (2, False, False),  # next week's report
        (2, True, True),  # a correction may change one more
        (3, True, False),
        (4, True, False),
    ],
)
def test_is_copy_figure_rule(changed: int, correction: bool, expected: bool) -> None:
    text = FLOWS
    for old, new in FLOW_CHANGES[:changed]:
        text = text.replace(f" {old} ", f" {new} ")
    assert compare(prep(text), prep(FLOWS), SIZE).figures_missing == changed
    assert verdict(text, FLOWS, correction=correction) is expected


def test_short_items_are_copies_only_when_identical_with_the_same_title() -> None:
    assert len(prep(SHORT_HALT).shingles) < SETTINGS.min_shingles
    assert verdict(SHORT_HALT, SHORT_HALT, same_headline=True) is True
    assert verdict(SHORT_HALT, SHORT_HALT) is False
    assert verdict(SHORT_HALT, SHORT_HOLIDAY, same_headline=True) is False
    assert verdict(SHORT_HALT, SHORT_HALT + " Shares last traded at 41 cents.") is False
    assert verdict("", "", same_headline=True) is False


BASE_COMPARISON = compare(prep(ORIGINAL), prep(ORIGINAL), SIZE)


@pytest.mark.parametrize(
    ("jaccard", "containment", "aligned", "shorter", "expected"),
    [
        (0.9, 0.95, True, SETTINGS.min_shingles, True),
        (0.9, 0.95, True, SETTINGS.min_shingles - 1, False),  # too short to judge
        (0.5, SETTINGS.min_containment, False, 50, True),
        (0.5, SETTINGS.min_containment - 0.01, True, 50, False),
        (SETTINGS.min_jaccard, 0.9, False, 50, True),
        (SETTINGS.min_jaccard - 0.01, 0.9, False, 50, False),  # a quote
        (SETTINGS.min_jaccard - 0.01, 0.9, True, 50, True),  # a summary
    ],
)
def test_is_copy_thresholds(
    jaccard: float, containment: float, aligned: bool, shorter: int, expected: bool
) -> None:
    comparison = replace(BASE_COMPARISON, jaccard=jaccard, containment=containment, aligned=aligned)
    assert is_copy(comparison, shorter, SETTINGS) is expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("CORRECTED: Equity funds draw inflows", True),
        ("Correction: Tessaly raises outlook", True),
        ("REFILE-Tessaly raises outlook", True),
        ("UPDATE 2-Tessaly raises outlook", True),
        ("Updated: Tessaly raises outlook", True),
        ("Tessaly raises outlook", False),
        ("Tessaly issues correction to outlook", False),
        ("Updates to the Veloria auction calendar", False),
        ("", False),
    ],
)
def test_is_correction(title: str, expected: bool) -> None:
    assert is_correction(title) is expected


# === relation() ==============================================================================

T0 = datetime(2026, 7, 23, 8, 0, tzinfo=UTC)


def member(
    id: int,
    publisher: str,
    minutes: float = 0.0,
    credits: frozenset[str] = frozenset(),
    *,
    seen_minutes: float | None = None,
) -> Member:
    published = T0 + timedelta(minutes=minutes)
    seen = published if seen_minutes is None else T0 + timedelta(minutes=seen_minutes)
    return Member(
        id=id,
        feed_id=id * 10,
        publisher=publisher,
        published=published,
        first_seen=seen,
        title=f"item {id}",
        credits=credits,
    )


def similarity(jaccard: float, containment: float = 0.95) -> Comparison:
    return replace(BASE_COMPARISON, jaccard=jaccard, containment=containment)


@pytest.mark.parametrize(
    ("child_publisher", "jaccard", "expected"),
    [
        ("Harbor Ledger", 0.95, Relation.SYNDICATED),
        ("Harbor Ledger", 0.4, Relation.SYNDICATED),
        ("Tessaly Wire", SETTINGS.duplicate_jaccard, Relation.DUPLICATE),
        ("TESSALY WIRE", 1.0, Relation.DUPLICATE),
        ("Tessaly Wire", SETTINGS.duplicate_jaccard - 0.01, Relation.VERSION),
        ("tessaly wire", 0.35, Relation.VERSION),
    ],
)
def test_relation(child_publisher: str, jaccard: float, expected: Relation) -> None:
    child = member(2, child_publisher, 30)
    parent = member(1, "Tessaly Wire")
    assert relation(child, parent, similarity(jaccard), SETTINGS) is expected


# === credits_between() / earlier() ===========================================================


@pytest.mark.parametrize(
    ("child_credits", "child_publisher", "hints", "expected"),
    [
        (frozenset({"Tessaly Wire"}), "Harbor Ledger", (), True),
        (frozenset({"tessaly wire"}), "Harbor Ledger", (), True),
        (frozenset(), "Harbor Ledger", ("TESSALY WIRE",), True),
        (frozenset({"Meridian Post"}), "Harbor Ledger", (), False),
        (frozenset(), "Harbor Ledger", (), False),
        # crediting yourself is not attribution
        (frozenset({"Tessaly Wire"}), "Tessaly Wire", (), False),
    ],
)
def test_credits_between(
    child_credits: frozenset[str], child_publisher: str, hints: tuple[str, ...], expected: bool
) -> None:
    child = member(2, child_publisher, credits=child_credits)
    assert credits_between(child, member(1, "Tessaly Wire"), hints) is expected


def test_earlier_is_a_total_order() -> None:
    a = member(1, "A", 0)
    b = member(2, "B", 0)  # same time, higher id
    c = member(3, "C", 0, seen_minutes=-5)  # same time, seen first
    d = member(4, "D", -1)
    assert sorted([a, b, c, d], key=lambda m: (m.published, m.first_seen, m.id)) == [d, c, a, b]
    assert earlier(d, c) and earlier(c, a) and earlier(a, b)
    assert not earlier(a, a)
    assert not earlier(b, a)


# === choose_parent() =========================================================================


def test_credit_wins_even_over_an_earlier_closer_match() -> None:
    new = member(9, "Harbor Ledger", 60, credits=frozenset({"Tessaly Wire"}))
    credited_later = Match(member(2, "Tessaly Wire", 90), similarity(0.5))
    closer_earlier = Match(member(1, "Meridian Post", 0), similarity(0.99))
    parent, method = choose_parent(new, [closer_earlier, credited_later])
    assert parent is credited_later
    assert method == "attribution"


def test_feed_hint_counts_as_credit() -> None:
    new = member(9, "Harbor Ledger", 60)
    hinted = Match(member(2, "Tessaly Wire", 90), similarity(0.5))
    other = Match(member(1, "Meridian Post", 0), similarity(0.99))
    assert choose_parent(new, [other, hinted], hints=("Tessaly Wire",)) == (hinted, "attribution")


def test_without_credit_the_most_similar_earlier_match_wins() -> None:
    new = member(9, "Harbor Ledger", 60)
    older_weak = Match(member(1, "Tessaly Wire", 0), similarity(0.5))
    older_strong = Match(member(2, "Meridian Post", 30), similarity(0.8))
    later_strongest = Match(member(3, "Quay Street Journal", 120), similarity(0.99))
    parent, method = choose_parent(new, [older_weak, later_strongest, older_strong])
    assert parent is older_strong
    assert method == "published"


def test_same_publish_time_is_decided_by_first_seen() -> None:
    new = member(9, "Harbor Ledger", 0, seen_minutes=10)
    match = Match(member(1, "Tessaly Wire", 0, seen_minutes=0), similarity(0.9))
    assert choose_parent(new, [match]) == (match, "first_seen")


def test_syndication_of_syndication_picks_the_copy_it_came_from() -> None:
    """RECOPY copied LIGHT_EDIT, which copied ORIGINAL; it carries LIGHT_EDIT's edits."""
    recopy = prep(RECOPY)
    to_original = compare(recopy, prep(ORIGINAL), SIZE)
    to_edit = compare(recopy, prep(LIGHT_EDIT), SIZE)
    assert to_edit.jaccard > to_original.jaccard
    original = Match(member(1, "Tessaly Wire", 0), to_original)
    edit = Match(member(2, "Harbor Ledger", 45), to_edit)
    new = member(3, "Meridian Post", 90)
    parent, method = choose_parent(new, [original, edit])
    assert parent is edit
    assert method == "published"
    assert relation(new, parent.member, parent.comparison, SETTINGS) is Relation.SYNDICATED


def test_new_item_earlier_than_every_match_is_the_original() -> None:
    new = member(1, "Tessaly Wire", 0)
    later = [
        Match(member(2, "Harbor Ledger", 30), similarity(0.9)),
        Match(member(3, "Meridian Post", 60), similarity(0.6)),
    ]
    parent, _ = choose_parent(new, later)
    assert parent is None


def test_no_matches_means_original() -> None:
    assert choose_parent(member(1, "Tessaly Wire"), [])[0] is None


def test_a_match_crediting_the_new_items_publisher_is_not_its_parent() -> None:
    # The copy was seen first (its feed is faster) but says it came from the new item's publisher.
    new = member(5, "Tessaly Wire", 30)
    crediting = Match(
        member(6, "Harbor Ledger", 10, credits=frozenset({"Tessaly Wire"})), similarity(0.97)
    )
    independent = Match(member(7, "Meridian Post", 20), similarity(0.6))
    assert choose_parent(new, [crediting]) == (None, "published")
    parent, method = choose_parent(new, [crediting, independent])
    assert parent is independent
    assert method == "published"


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_ties_are_broken_by_lowest_id(order: tuple[int, int, int]) -> None:
    new = member(9, "Harbor Ledger", 60)
    tied = [
        Match(member(4, "Tessaly Wire", 0), similarity(0.8, 0.9)),
        Match(member(2, "Meridian Post", 10), similarity(0.8, 0.9)),
        Match(member(3, "Quay Street Journal", 20), similarity(0.8, 0.9)),
    ]
    parent, _ = choose_parent(new, [tied[i] for i in order])
    assert parent is not None and parent.member.id == 2


def test_ties_on_jaccard_prefer_higher_containment() -> None:
    new = member(9, "Harbor Ledger", 60)
    low = Match(member(1, "Tessaly Wire", 0), similarity(0.8, 0.85))
    high = Match(member(2, "Meridian Post", 10), similarity(0.8, 0.95))
    assert choose_parent(new, [low, high])[0] is high


def test_among_credited_matches_the_closest_wins() -> None:
    new = member(9, "Harbor Ledger", 60, credits=frozenset({"Tessaly Wire", "Meridian Post"}))
    weak = Match(member(1, "Tessaly Wire", 0), similarity(0.5))
    strong = Match(member(2, "Meridian Post", 90), similarity(0.7))
    assert choose_parent(new, [weak, strong]) == (strong, "attribution")


# === dedup.Signer / CandidateIndex ===========================================================


def encoded(shingles: Iterable[str]) -> list[bytes]:
    return [shingle.encode("utf-8") for shingle in shingles]


def sign(text: str, signer: Signer | None = None) -> Signature:
    prepared = prep(text)
    return (signer or Signer(SETTINGS)).sign(
        encoded(prepared.shingles), encoded(prepared.lead_shingles)
    )


INDEXED_AT = datetime(2026, 11, 20, tzinfo=UTC)


def index_of(**texts: str) -> tuple[CandidateIndex, dict[str, int]]:
    index = CandidateIndex(SETTINGS)
    ids = {}
    for number, (name, text) in enumerate(texts.items(), start=1):
        index.add(number, sign(text), INDEXED_AT)
        ids[name] = number
    return index, ids


def test_signatures_are_raw_uint32_and_deterministic() -> None:
    first = sign(ORIGINAL, Signer(SETTINGS))
    second = sign(ORIGINAL, Signer(SETTINGS))
    assert len(first.body) == len(first.lead) == SETTINGS.num_perm * 4
    assert isinstance(first.body, bytes) and isinstance(first.lead, bytes)
    assert first == second
    prepared = prep(ORIGINAL)
    reordered = Signer(SETTINGS).sign(
        encoded(sorted(prepared.shingles)), encoded(prepared.lead_shingles)
    )
    assert reordered == first


def test_one_signer_signs_from_many_threads_as_from_one() -> None:
    texts = [ORIGINAL, SUMMARY, FLOWS, *(f"{ORIGINAL} Update {n}." for n in range(20))]
    signer = Signer(SETTINGS)
    alone = [sign(text, signer) for text in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: sign(text, signer), texts * 4))
    assert together == alone * 4


def test_signature_size_follows_num_perm() -> None:
    settings = replace(SETTINGS, num_perm=64)
    prepared = prep(SUMMARY)
    signature = Signer(settings).sign(encoded(prepared.shingles), encoded(prepared.lead_shingles))
    assert len(signature.body) == len(signature.lead) == 256


def test_different_seeds_give_different_signatures() -> None:
    prepared = prep(ORIGINAL)
    other = Signer(replace(SETTINGS, seed=2)).sign(
        encoded(prepared.shingles), encoded(prepared.lead_shingles)
    )
    assert other.body != sign(ORIGINAL).body


def test_identical_text_is_found() -> None:
    index, ids = index_of(original=ORIGINAL, stories=STORY_ONE, flows=FLOWS)
    assert len(index) == 3
    assert ids["original"] in index.query(sign(ORIGINAL))
    assert ids["flows"] in index.query(sign(FLOWS))


def test_copies_are_found() -> None:
    index, ids = index_of(original=ORIGINAL, stories=STORY_ONE, flows=FLOWS)
    for copy in (CHROME, LIGHT_EDIT, WIRE):
        assert index.query(sign(copy)) == {ids["original"]}


def test_summary_is_found_through_its_lead() -> None:
    summary, full = prep(SUMMARY), prep(ORIGINAL)
    # As whole texts they are far apart; their leads are the same.
    assert compare(summary, full, SIZE).jaccard < 0.3
    assert summary.lead_shingles == full.lead_shingles[: len(summary.lead_shingles)]
    index, ids = index_of(original=ORIGINAL)
    signature = sign(SUMMARY)
    assert index.query(signature) == {ids["original"]}
    # The lead signature alone finds it, whatever the body estimate happens to be.
    lead_only = Signature(sign(STORY_TWO).body, signature.lead)
    assert index.query(lead_only) == {ids["original"]}


def test_unrelated_texts_are_not_found() -> None:
    index, _ = index_of(original=ORIGINAL, flows=FLOWS, earnings=EARNINGS_A)
    for text in (STORY_ONE, STORY_TWO, PARAPHRASE, REPO_MONDAY):
        assert index.query(sign(text)) == set()


def test_remove_and_re_add() -> None:
    index, ids = index_of(original=ORIGINAL, flows=FLOWS)
    index.remove(ids["original"])
    assert ids["original"] not in index
    assert len(index) == 1
    assert index.query(sign(ORIGINAL)) == set()
    index.remove(ids["original"])  # removing twice is harmless
    index.remove(999)
    index.add(ids["original"], sign(ORIGINAL), INDEXED_AT)
    index.add(ids["original"], sign(ORIGINAL), INDEXED_AT)  # re-adding replaces
    assert len(index) == 2
    assert index.query(sign(ORIGINAL)) == {ids["original"]}


def test_index_finds_the_same_after_merging_and_after_a_bulk_load() -> None:
    texts = {"original": ORIGINAL, "flows": FLOWS, "earnings": EARNINGS_A}
    signatures = {name: sign(text) for name, text in texts.items()}
    queries = [CHROME, LIGHT_EDIT, WIRE, SUMMARY, FLOWS, STORY_ONE, PARAPHRASE]

    def answers(index: CandidateIndex) -> list[set[int]]:
        return [index.query(sign(q)) for q in queries]

    recent, _ = index_of(**texts)
    expected = answers(recent)
    assert expected[0] == {1} and expected[4] == {2} and expected[5] == set()
    merged, _ = index_of(**texts)
    merged._merge_recent()
    assert answers(merged) == expected
    loaded = CandidateIndex(SETTINGS)
    loaded.load(
        (number, signatures[name].body, signatures[name].lead, INDEXED_AT)
        for number, name in enumerate(texts, start=1)
    )
    assert len(loaded) == 3 and 1 in loaded
    assert answers(loaded) == expected


def test_index_remove_re_add_and_prune_across_merges() -> None:
    index, ids = index_of(original=ORIGINAL, flows=FLOWS)
    index._merge_recent()
    index.remove(ids["original"])
    assert ids["original"] not in index and len(index) == 1
    assert index.query(sign(ORIGINAL)) == set()
    index.add(ids["original"], sign(ORIGINAL), INDEXED_AT + timedelta(days=3))
    assert index.query(sign(ORIGINAL)) == {ids["original"]}
    index._merge_recent()
    assert len(index) == 2 and index.query(sign(CHROME)) == {ids["original"]}
    # Flows was indexed earlier than the re-added original: pruning takes only it.
    assert index.prune(INDEXED_AT + timedelta(days=1)) == 1
    assert ids["flows"] not in index and ids["original"] in index
    assert index.query(sign(FLOWS)) == set()
    index._rebuild()
    assert len(index) == 1 and index.query(sign(WIRE)) == {ids["original"]}


def test_index_merges_by_itself_as_it_grows() -> None:
    index = CandidateIndex(SETTINGS)
    signature = sign(ORIGINAL)
    count = CandidateIndex._BATCH + 10
    for number in range(count):
        index.add(number, signature, INDEXED_AT)
    assert len(index._recent) == 10 and len(index) == count
    assert index.query(sign(CHROME)) == set(range(count))


def test_answers_kept_from_asking_ahead_are_dropped_when_the_arrays_change() -> None:
    index, ids = index_of(original=ORIGINAL, flows=FLOWS)
    index._merge_recent()
    asked = [band_keys(sign(CHROME), band_layout(SETTINGS))]
    assert set(index.merged_hits(asked, 64, ahead=True)[0]) == {ids["original"]}
    index.remove(ids["original"])
    assert index.merged_hits(asked, 64)[0] == Counter()
    # Filed anew (young arrays) and merged into the main ones after a question ahead.
    index.merged_hits(asked, 64, ahead=True)
    index.add(ids["original"], sign(ORIGINAL), INDEXED_AT)
    index._merge_recent()
    assert set(index.merged_hits(asked, 64)[0]) == {ids["original"]}
    # Unchanged arrays: the answer kept is the answer.
    index.merged_hits(asked, 64, ahead=True)
    assert set(index.merged_hits(asked, 64)[0]) == {ids["original"]}
    assert index.merged_hits(asked, 64, ahead=True) == index.merged_hits(asked, 64)
