"""The verdicts as the tests call them: one pair's text measures in, copy or not out."""

from __future__ import annotations

from aggregator.dedup.features import PairFeatures
from aggregator.dedup.verdict import CalibratedVerdict, RuleVerdict, Verdict
from aggregator.models import Comparison, DedupSettings


def features(
    comparison: Comparison,
    shorter: int,
    *,
    correction: bool = False,
    same_headline: bool = False,
    headline_overlap: float = 1.0,
    same_url: bool = False,
    lag_seconds: float = 1800.0,
) -> PairFeatures:
    return PairFeatures(
        text=comparison,
        shorter_shingles=shorter,
        same_url=same_url,
        same_publisher=correction,
        correction=correction,
        same_headline=same_headline,
        headline_overlap=headline_overlap,
        lag_seconds=lag_seconds,
    )


def is_copy(
    comparison: Comparison,
    shorter: int,
    settings: DedupSettings,
    *,
    verdict: type[RuleVerdict] | type[CalibratedVerdict] = RuleVerdict,
    **kwargs: float | bool,
) -> bool:
    judge: Verdict = verdict(settings)
    return judge.judge(features(comparison, shorter, **kwargs)).copy  # type: ignore[arg-type]
