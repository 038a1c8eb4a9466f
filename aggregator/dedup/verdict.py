"""Pure: is a candidate a copy of the new item? One interface, two implementations.

A Verdict reads one PairFeatures record and returns a Decision: a score in
[0, 1] and a yes/no. `CalibratedVerdict` (the default) is a logistic model
fitted on real labelled pages; `RuleVerdict` is the hand-set rules it replaced,
kept to compare against (`[dedup] verdict = "rules"`). Both share the two rules
no text measure can settle: a text too short to judge by overlap, and two items
at one address. docs/design.md ("The verdict") gives the figures behind both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aggregator.dedup.features import PairFeatures
from aggregator.models import DedupSettings

# Share of the shorter headline's words found in the other headline, required when
# two texts share only their opening (see RuleVerdict).
MIN_TITLE_OVERLAP = 0.3

# Two items at one address are one story unless their texts say otherwise: a
# publisher that re-uses a URL for a different, rewritten story shares almost no
# three-word shingle with it and has another headline. A decision, not a fit
# (no labelled page re-uses an address that way): docs/design.md, "Same address".
SAME_URL_MIN_SHORT = 0.15

# The calibrated model judges pairs whose smaller text has at least this many
# shingles: the range it was fitted on (the dev set's page openings: its smallest
# copy pair has 65, 95% of its pages 73 or more). Shorter texts, wire briefs and
# earnings tables whose template words are most of the text (Reuters-21578:
# "Shr 18 cts vs 13 cts ..."), are judged by the rules, which were set on them.
MIN_CALIBRATED_SHINGLES = 60

# Pairs published further apart than this need a higher score and next to no
# substitution. The dev set cannot say (its copies are stamped within two hours of
# their original by construction). On Reuters-21578, links over a day apart that
# were another day's report on a desk's template with other wording ("U.K. money
# market offered early assistance") scored at most 0.778, resent wires at least
# 0.966; and among those scoring that high, the resends substituted at most 0.036
# and the weekly and daily reports with new figures ("No grain shipments to the USSR
# -- USDA", "National average prices for farmer-owned reserve") at least 0.071.
# Both limits sit halfway (bench/reuters.py; docs/design.md, "Reuters-21578").
MAX_CALIBRATED_LAG = 86400.0
DAYS_APART_THRESHOLD = 0.87
DAYS_APART_MAX_SUBSTITUTION = 0.05

# Share of three-word shingles at which the shorter text lies wholly in the other.
WHOLE = 0.9
SAME_URL_MIN_HEADLINE = 0.5


@dataclass(frozen=True, slots=True)
class Decision:
    score: float
    copy: bool


class Verdict(Protocol):
    @property
    def name(self) -> str: ...

    def judge(self, features: PairFeatures) -> Decision: ...


def settled(features: PairFeatures, settings: DedupSettings) -> Decision | None:
    """The rules both verdicts share; None when the text measures must decide."""
    text = features.text
    if features.same_url:
        linked = (
            text.short_containment >= SAME_URL_MIN_SHORT
            or features.headline_overlap >= SAME_URL_MIN_HEADLINE
        )
        return Decision(1.0 if linked else 0.0, linked)
    if features.other_instruments:
        # Headlines about two companies: one template, two reports.
        return Decision(0.0, False)
    if features.shorter_shingles < settings.min_shingles:
        # "Qtly div 20 cts vs 20 cts prior": a copy only when identical, under the
        # same headline (the same words, or headlines naming the same instruments).
        linked = features.same_headline and features.shorter_shingles > 0 and text.jaccard == 1.0
        return Decision(1.0 if linked else 0.0, linked)
    return None


def quoted_blurb(features: PairFeatures, settings: DedupSettings) -> bool:
    """Another story's blurb on a page, not a copy: the shorter text lies wholly in
    the longer one but is a small part of it, under an unrelated headline.

    A page with a "Related Articles" block holds the other story's whole summary;
    so does the full text a summary was cut from. Only the headlines tell them
    apart. A rule, not a weight: the dev set's page openings carry no such blurb
    as a separate item. Real copies are often retitled, so it asks for the whole
    shorter text (docs/design.md, "The verdict").
    """
    text = features.text
    return (
        text.short_containment >= WHOLE
        and text.jaccard < settings.min_jaccard
        and features.headline_overlap < MIN_TITLE_OVERLAP
    )


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """The hand-set rules of before the calibration: thresholds from [dedup]."""

    settings: DedupSettings
    name: str = "rules"

    def judge(self, features: PairFeatures) -> Decision:
        fixed = settled(features, self.settings)
        if fixed is not None:
            return fixed
        text, settings = features.text, self.settings
        allowed = int(settings.figure_tolerance * text.figures) + (1 if features.correction else 0)
        copy = not (
            text.containment < settings.min_containment
            # With little overlap overall, only a shared opening counts (a summary of a
            # full text), and the headlines must share words too.
            or (
                text.jaccard < settings.min_jaccard
                and (not text.aligned or features.headline_overlap < MIN_TITLE_OVERLAP)
            )
            # A templated report: other figures in the same wording.
            or text.figures_missing > allowed
            # Same template, another company: the opening names someone the other lacks.
            or (text.subject_missing > 0 and not features.correction)
            or text.name_mismatch > settings.max_name_mismatch
        )
        return Decision(text.containment if copy else min(text.containment, 0.49), copy)


# What the calibrated model may read: name -> value in [0, 1] of a pair's features.
INPUTS: Mapping[str, Callable[[PairFeatures], float]] = {
    "short_containment": lambda f: f.text.short_containment,
    "unquoted_containment": lambda f: f.text.unquoted_containment,
    "substitution": lambda f: f.text.substitution,
    "containment": lambda f: f.text.containment,
    "jaccard": lambda f: f.text.jaccard,
    "aligned": lambda f: float(f.text.aligned),
    "headline_overlap": lambda f: f.headline_overlap,
    "same_publisher": lambda f: float(f.same_publisher),
    "lag_days": lambda f: min(f.lag_seconds / 86400.0, 14.0) / 14.0,
}

# Fitted by `.venv/bin/python bench/fit_verdict.py` on ../shared/corpus/syndication-dev/
# (196 real pages from 169 sites; the model on the 229 pairs sharing at least a tenth
# of their three-word shingles). Out of fold (5 folds by event family, each fold's
# threshold and substitution limit chosen on its training pages): precision 1.000,
# recall 0.963. Refit and paste its last lines here whenever a feature changes.
FITTED_WEIGHTS: Mapping[str, float] = {
    "short_containment": 3.518,
    "unquoted_containment": 3.16,
    "substitution": -3.157,
    "headline_overlap": 0.893,
}
FITTED_BIAS = -2.849
FITTED_THRESHOLD = 0.4
# Above this substitution a pair is a template, whatever else it shares: halfway
# between the most substituted copy (0.207, a sub-edited copy) and the least
# substituted non-copy that overlaps as much as a copy (0.214, another story from
# the same wire). A limit
# rather than a weight because a linear score lets a template that shares nearly
# all its words outweigh its changed figures.
MAX_SUBSTITUTION = 0.211


def outside_fitted_range(features: PairFeatures) -> bool:
    """Pairs the calibrated model was not fitted on; the rules judge them."""
    return features.shorter_shingles < MIN_CALIBRATED_SHINGLES


@dataclass(frozen=True, slots=True)
class CalibratedVerdict:
    """A logistic model over INPUTS: score = sigmoid(bias + sum of weight * input);
    a copy when the score reaches the threshold, unless the pair is a template (its
    substitution at the limit) or another story's blurb. Texts shorter than the range
    it was fitted on go to the rules; pairs days apart need a higher score and next
    to no substitution."""

    settings: DedupSettings
    weights: Mapping[str, float] = field(default_factory=lambda: dict(FITTED_WEIGHTS))
    bias: float = FITTED_BIAS
    threshold: float = FITTED_THRESHOLD
    max_substitution: float = MAX_SUBSTITUTION
    name: str = "calibrated"

    def score(self, features: PairFeatures) -> float:
        z = self.bias + sum(w * INPUTS[name](features) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def judge(self, features: PairFeatures) -> Decision:
        fixed = settled(features, self.settings)
        if fixed is not None:
            return fixed
        if outside_fitted_range(features):
            return RuleVerdict(self.settings).judge(features)
        score = self.score(features)
        threshold, max_substitution = self.threshold, self.max_substitution
        if features.lag_seconds > MAX_CALIBRATED_LAG:
            threshold = max(threshold, DAYS_APART_THRESHOLD)
            max_substitution = min(max_substitution, DAYS_APART_MAX_SUBSTITUTION)
        copy = (
            score >= threshold
            and features.text.substitution < max_substitution
            and not quoted_blurb(features, self.settings)
        )
        return Decision(score, copy)


def make_verdict(settings: DedupSettings) -> Verdict:
    if settings.verdict == "rules":
        return RuleVerdict(settings)
    return CalibratedVerdict(settings)
