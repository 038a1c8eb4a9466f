"""The copy verdict on pairs of texts: a table of the cases real pages bring.

Each case is measured exactly as the linker measures it (prepare_body -> compare ->
pair_features) and judged by the default, calibrated verdict. The texts are ours,
modelled on the patterns of the real dev set; they guard the behaviour, the dev set
(bench/fit_verdict.py) is what chose the weights.
"""

from __future__ import annotations

import pytest

from aggregator.dedup.features import PairFeatures, compare, pair_features
from aggregator.dedup.prepare import prepare_body
from aggregator.dedup.verdict import CalibratedVerdict, Decision, RuleVerdict, make_verdict
from aggregator.models import DedupSettings
from aggregator.text import extract_tickers, tokens

SETTINGS = DedupSettings()

ARTICLE = [
    "Harwell Energy said on Thursday it would cut its capital spending by 12 per cent "
    "next year and return more cash to shareholders, after a slump in natural gas "
    "prices wiped 340 million dollars off its third-quarter profit.",
    "The company now expects to spend between 4.1 billion and 4.3 billion dollars in "
    "2027, down from 4.7 billion this year, chief executive Maren Tolliver told "
    "analysts on a conference call, adding that drilling in the northern basin would "
    "slow while the price of gas stayed below three dollars.",
    "Harwell raised its quarterly dividend by two cents to 58 cents a share and said it "
    "would buy back up to 1.5 billion dollars of stock over the next 18 months, the "
    "largest repurchase programme in its history.",
    "Analysts at Brockton Securities said the plan showed discipline but warned that "
    "lower spending could leave output flat in 2028 if prices recovered faster than "
    "the company assumed in its budget.",
    "Shares in Harwell rose 3.4 per cent in early trading, outperforming a broader "
    "index of energy stocks that was little changed on the day.",
]
TITLE = "Harwell Energy cuts spending, lifts dividend as gas slump hits profit"


def text(paragraphs: list[str]) -> str:
    return "\n".join(paragraphs)


def replaced(paragraphs: list[str], *swaps: tuple[str, str]) -> list[str]:
    out = []
    for paragraph in paragraphs:
        for old, new in swaps:
            paragraph = paragraph.replace(old, new)
        out.append(paragraph)
    return out


CHROME_WRAPPED = [
    "Home | Markets | Energy | Commodities",
    "Source: Harwell Energy",
    *ARTICLE,
    "Disclaimer: The information provided is not investment advice. Always do your own "
    "research before trading.",
    "Related Articles",
    "Oil steadies as traders weigh supply outlook",
    "Author Harwell Energy",
]
DATED_BYLINE = [
    "By Ada Marsh and Tom Ruiz, Reuters | Updated Nov 6, 2026 10:32 AM UTC | 4 min read",
    *ARTICLE,
]
WIDGET_PRICES = [
    "WTI 71.42 -0.8% Brent 75.10 -0.6% NatGas 2.91 +1.2% Gold 4,147.60 +0.3%",
    *ARTICLE[:4],
    "HWL 48.12 +3.4% | BRK 22.05 -0.2% | Vol 3.2M",
]
# The same wire an hour later: the share move updated, a reaction paragraph added.
LATER_TAKE = [
    *ARTICLE[:4],
    "Shares in Harwell rose 4.1 per cent by midday, outperforming a broader index of "
    "energy stocks that was little changed on the day.",
    "Rival Osgood Resources said last week it would keep its own budget unchanged.",
]
# A sub-editor's copy: a phrase changed in every paragraph, the facts kept.
SUB_EDITED = replaced(
    ARTICLE,
    ("said on Thursday it would", "announced on Thursday that it would"),
    ("return more cash to", "hand more cash back to"),
    ("wiped", "erased"),
    ("now expects to spend", "plans to spend"),
    ("told analysts on a conference call", "said on a call with analysts"),
    ("would slow while", "will slow as long as"),
    ("raised its quarterly dividend", "lifted its quarterly payout"),
    ("the largest repurchase programme in its history", "its biggest buyback ever"),
    ("showed discipline but warned", "was disciplined but cautioned"),
    ("rose 3.4 per cent in early trading", "gained 3.4 per cent early on"),
)
# Next quarter's report from the same template: every figure is another.
TEMPLATE_FIGURES = replaced(
    ARTICLE,
    ("12 per cent", "9 per cent"),
    ("340 million", "215 million"),
    ("third-quarter", "fourth-quarter"),
    ("4.1 billion and 4.3 billion", "3.8 billion and 4.0 billion"),
    ("in 2027", "in 2028"),
    ("4.7 billion", "4.4 billion"),
    ("two cents to 58 cents", "three cents to 61 cents"),
    ("1.5 billion", "2 billion"),
    ("18 months", "24 months"),
    ("flat in 2028", "flat in 2029"),
    ("3.4 per cent", "1.9 per cent"),
    ("three dollars", "four dollars"),
)
# Another company's release from the same template, with its own figures.
TEMPLATE_COMPANY = replaced(
    TEMPLATE_FIGURES,
    ("Harwell Energy", "Osgood Resources"),
    ("Harwell", "Osgood"),
    ("Maren Tolliver", "Deshawn Pike"),
    ("northern basin", "western shelf"),
    ("Brockton Securities", "Larkin Partners"),
)
# A later story of the same desk: a new event, the old story's spending paragraph
# kept as background.
LATER_STORY = [
    "Harwell Energy said on Monday it had agreed to sell its stake in the Talbot gas "
    "processing plant to a pipeline operator for 610 million dollars, as it sheds "
    "assets that no longer fit a leaner drilling plan.",
    "The buyer, Quarry Midstream, will take over the plant's operating staff and "
    "existing supply contracts when the deal closes in the first half of next year.",
    ARTICLE[1],
    "Harwell's shares were flat in afternoon trading.",
]


def judge(a: list[str], b: list[str], *, title_b: str = TITLE, lag_hours: float = 1.0) -> Decision:
    return make_verdict(SETTINGS).judge(features(a, b, title_b=title_b, lag_hours=lag_hours))


def features(
    a: list[str], b: list[str], *, title_b: str = TITLE, lag_hours: float = 1.0
) -> PairFeatures:
    left = prepare_body(text(a), frozenset(), shingle_size=5, lead_words=60)
    right = prepare_body(text(b), frozenset(), shingle_size=5, lead_words=60)
    return pair_features(
        compare(left, right, SETTINGS.shingle_size),
        min(len(left.shingles), len(right.shingles)),
        titles=(tokens(TITLE), tokens(title_b)),
        same_instruments=False,
        same_url=False,
        same_publisher=False,
        correction=False,
        lag_seconds=lag_hours * 3600,
    )


# A known gap (docs/design.md, "The verdict"): a short text half made of a paragraph
# of the other (a later story's background, one quoted statement) scores as a copy.
# The opening and paragraph-coverage measures that would tell them apart cost
# paraphrased copies on the real dev set, so none is shipped; strict, so a fix shows.
KNOWN_GAP = "shared background paragraph: no dev-set-calibrated measure separates it yet"

CASES = [
    pytest.param(ARTICLE, TITLE, True, id="verbatim"),
    pytest.param(CHROME_WRAPPED, "Harwell Energy to cut capex by 12%", True, id="chrome-wrapped"),
    pytest.param(DATED_BYLINE, TITLE, True, id="dated-byline"),
    pytest.param(WIDGET_PRICES, TITLE, True, id="widget-prices"),
    pytest.param(LATER_TAKE, TITLE, True, id="later-take-with-updated-figures"),
    pytest.param(SUB_EDITED, TITLE, True, id="sub-edited"),
    pytest.param(TEMPLATE_FIGURES, TITLE, False, id="template-substituted-figures"),
    pytest.param(
        TEMPLATE_COMPANY,
        "Osgood Resources cuts spending, lifts dividend",
        False,
        id="template-another-company",
    ),
    pytest.param(
        LATER_STORY,
        "Harwell Energy sells Talbot gas plant stake",
        False,
        id="background-paragraph-in-a-later-story",
        marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAP),
    ),
]


@pytest.mark.parametrize(("other", "title", "expected"), CASES)
def test_calibrated_verdict(other: list[str], title: str, expected: bool) -> None:
    decision = judge(ARTICLE, other, title_b=title)
    assert decision.copy is expected, decision
    assert 0.0 <= decision.score <= 1.0
    # Which item came first does not change the verdict.
    assert make_verdict(SETTINGS).judge(features(other, ARTICLE, title_b=title)).copy is expected


def test_score_ranks_closer_copies_higher() -> None:
    verbatim = judge(ARTICLE, ARTICLE).score
    wrapped = judge(ARTICLE, CHROME_WRAPPED).score
    template = judge(ARTICLE, TEMPLATE_FIGURES).score
    assert verbatim >= wrapped > template


def test_a_template_that_shares_nearly_every_word_is_still_a_template() -> None:
    measured = features(ARTICLE, TEMPLATE_FIGURES)
    # Most of the wording is shared: containment alone would call it a copy ...
    assert measured.text.short_containment > 0.5
    # ... but the figures sit in the same passages with other values.
    assert measured.text.substitution >= CalibratedVerdict(SETTINGS).max_substitution


def test_rounded_figures_are_not_substitutions() -> None:
    rounded = replaced(ARTICLE, ("4.1 billion", "4.10 billion"), ("3.4 per cent", "3.42 per cent"))
    assert features(rounded, ARTICLE).text.substitution == 0.0
    changed = replaced(ARTICLE, ("3.4 per cent", "3.9 per cent"))
    assert features(changed, ARTICLE).text.substitution > 0.0


def test_a_company_named_at_a_sentence_start_is_substituted_like_any_name() -> None:
    # Reuters-21578's crude postings: "Amoco Corp said it raised ..." and "Texaco Inc
    # said it raised ..." on one template. The opening capital is the name.
    posting = [
        "Amoco said it raised the contract price it will pay for most grades of crude "
        "oil by fifty cents a barrel, effective today, in a move traders had expected.",
        "Amoco said the increase brings its posting for the main domestic grade to a "
        "level last seen in the spring, and other grades were left unchanged.",
    ]
    other = replaced(posting, ("Amoco", "Texaco"))
    assert features(other, posting).text.substitution > 0.0
    # A sentence's common opener is not a name.
    opener = replaced(posting, ("Amoco said the increase", "And it said the increase"))
    assert features(opener, posting).text.substitution == 0.0


def test_headlines_about_two_companies_are_two_reports() -> None:
    # Reuters-21578: "AMOCO <AN> RAISES CRUDE PRICES", "TEXACO <TX> UNIT RAISES ...".
    def headlines(mine: str, theirs: str) -> Decision:
        left = prepare_body(text(ARTICLE), frozenset(), shingle_size=5, lead_words=60)
        measured = pair_features(
            compare(left, left, SETTINGS.shingle_size),
            len(left.shingles),
            titles=(tokens(mine), tokens(theirs)),
            same_instruments=False,
            same_url=False,
            same_publisher=True,
            correction=False,
            lag_seconds=600,
            instruments=(extract_tickers(mine, ""), extract_tickers(theirs, "")),
        )
        return make_verdict(SETTINGS).judge(measured)

    assert not headlines("AMOCO <AN> RAISES CRUDE PRICES", "TEXACO <TX> UNIT RAISES PRICES").copy
    # A corrected symbol keeps the company's name.
    assert headlines("WESTPORT BANCORP <WEBAT.O> NET", "WESTPORT BANCORP INC <WBAT.O> NET").copy
    assert headlines("AMOCO <AN> RAISES CRUDE PRICES", "AMOCO <AN> LIFTS CRUDE POSTINGS").copy


def test_pairs_days_apart_must_write_their_figures_alike() -> None:
    # Hours apart, two figures moving is a later take of one story; days apart, it is
    # the next report on the desk's template (Reuters-21578: "National average prices
    # for farmer-owned reserve", "No grain shipments to the USSR -- USDA").
    moved = replaced(ARTICLE, ("rose 3.4 per cent", "fell 1.2 per cent"), ("340", "355"))
    assert judge(ARTICLE, moved, lag_hours=2).copy
    assert not judge(ARTICLE, moved, lag_hours=72).copy
    # A copy carried days later keeps its words and figures.
    assert judge(ARTICLE, CHROME_WRAPPED, lag_hours=72).copy
    assert judge(ARTICLE, SUB_EDITED, lag_hours=72).copy


@pytest.mark.xfail(strict=True, reason=KNOWN_GAP)
def test_quoted_statement_shared_by_two_desks_is_not_a_copy() -> None:
    statement = (
        '"We are spending less because the market has told us to, and we will keep '
        "every dollar we save for our shareholders until gas prices recover to a level "
        'that pays for new wells," Tolliver said in a statement released on Thursday.'
    )
    desk_a = [
        "Harwell Energy will trim its drilling budget next year, the company announced, "
        "joining a growing list of producers retreating from the gas market this autumn.",
        statement,
    ]
    desk_b = [
        "Natural gas producers are pulling back again, and Harwell is the latest to say "
        "so: its budget for next year falls by about an eighth from this one.",
        statement,
    ]
    measured = features(desk_a, desk_b)
    assert measured.text.unquoted_containment < measured.text.short_containment
    assert make_verdict(SETTINGS).judge(measured).copy is False


def test_the_rules_remain_available_and_are_stricter_on_chrome() -> None:
    assert make_verdict(SETTINGS).name == "calibrated"
    rules = RuleVerdict(SETTINGS)
    assert rules.judge(features(ARTICLE, ARTICLE)).copy is True
    assert rules.judge(features(ARTICLE, TEMPLATE_FIGURES)).copy is False
