"""Fit the calibrated copy verdict on real labelled pages, scored out of fold.

    bench/fit_verdict.py [LABELS.json] [--folds K] [--json]
    (default: ../shared/corpus/syndication-dev/labels.json)

Every page is served and stored as bench/eval_dedup.py does it (paragraphs as HTML,
read back by the product's markup stage), then prepared as the linker prepares it
(no learned boilerplate: the dev set has one or two pages a site), every pair is
measured by the product's own compare() and pair_features(), and a logistic model over a few of
verdict.INPUTS is fitted. Folds split the pages by `family` (a story and its
templated negatives stay together); a pair is scored by the model fitted
without the folds of both its pages, with the copy threshold chosen on that
model's own training pages. Scores are then linked as the product links them
(connected components) and counted pairwise over stories, as eval_dedup.py
counts them. The last lines are the weights to paste into dedup/verdict.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from aggregator.dedup.features import compare, is_correction, pair_features
from aggregator.dedup.prepare import prepare_body
from aggregator.dedup.verdict import (
    DAYS_APART_MAX_SUBSTITUTION,
    DAYS_APART_THRESHOLD,
    INPUTS,
    MAX_CALIBRATED_LAG,
    CalibratedVerdict,
    RuleVerdict,
    outside_fitted_range,
    quoted_blurb,
    settled,
)
from aggregator.models import DedupSettings
from aggregator.text import extract_tickers, html_to_text, tokens

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_dedup import text_to_html

HERE = Path(__file__).resolve().parent
DEFAULT_LABELS = HERE.parents[1] / "shared" / "corpus" / "syndication-dev" / "labels.json"

# The input sets tried; the one with the best out-of-fold F1 is reported for pasting
# (ties go to the smaller set).
CANDIDATES = [
    ("short_containment",),
    ("short_containment", "substitution"),
    ("short_containment", "unquoted_containment", "substitution"),
    ("short_containment", "unquoted_containment", "substitution", "headline_overlap"),
    ("short_containment", "unquoted_containment", "substitution", "headline_overlap", "lag_days"),
    ("short_containment", "unquoted_containment", "substitution", "lag_days"),
    ("short_containment", "unquoted_containment", "substitution", "aligned"),
    ("short_containment", "unquoted_containment", "substitution", "containment", "jaccard"),
]
L2 = 1.0
# The templates the substitution limit is placed against: those sharing this much.
VETO_OVERLAP = 0.3
# Pairs sharing less than this share of three-word shingles are not fitted on.
NEAR = 0.1
THRESHOLDS = [round(0.05 * n, 2) for n in range(2, 19)]


def load(path: Path) -> list[dict[str, str]]:
    try:
        return list(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {path}: {e}") from e


def as_polled(text: str) -> str:
    """The text as the product stores it after eval_dedup.py serves it in a feed."""
    return html_to_text(text_to_html(text))


def when(label: dict[str, str]) -> datetime:
    return datetime.fromisoformat(label["published"].replace("Z", "+00:00"))


def measure(labels: Sequence[dict[str, str]], settings: DedupSettings) -> list[tuple]:
    """(i, j, PairFeatures) for every pair of pages."""
    prepared = [
        prepare_body(
            as_polled(label["text"]),
            frozenset(),
            shingle_size=settings.shingle_size,
            lead_words=settings.lead_words,
        )
        for label in labels
    ]
    titles = [tokens(label["title"]) for label in labels]
    tickers = [extract_tickers(label["title"], "") for label in labels]
    rows = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        a, b = labels[i], labels[j]
        same_site = a["site"] == b["site"]
        rows.append(
            (
                i,
                j,
                pair_features(
                    compare(prepared[i], prepared[j], settings.shingle_size),
                    min(len(prepared[i].shingles), len(prepared[j].shingles)),
                    titles=(titles[i], titles[j]),
                    same_instruments=False,
                    same_url=same_site and a["url"] == b["url"],
                    same_publisher=same_site,
                    correction=same_site
                    and (is_correction(a["title"]) or is_correction(b["title"])),
                    lag_seconds=(when(a) - when(b)).total_seconds(),
                    instruments=(tickers[i], tickers[j]),
                ),
            )
        )
    return rows


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method (bias unpenalised, last)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.diag([L2] * x.shape[1] + [0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -60, 60)))
        gradient = xb.T @ (p - y) + penalty @ w
        hessian = (xb * (p * (1 - p))[:, None]).T @ xb + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def scores(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ w[:-1] + w[-1], -60, 60)))


def cluster_metrics(
    n: int, groups: Sequence[str], linked: Sequence[tuple[int, int]]
) -> tuple[float, float, float]:
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in linked:
        parent[find(i)] = find(j)
    pairs = lambda k: k * (k - 1) // 2  # noqa: E731
    cells = Counter((find(i), groups[i]) for i in range(n))
    stories = Counter(find(i) for i in range(n))
    truth = Counter(groups)
    tp = sum(pairs(k) for k in cells.values())
    predicted = sum(pairs(k) for k in stories.values())
    true = sum(pairs(k) for k in truth.values())
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass(frozen=True)
class Pairs:
    """Every pair's model inputs, truth, and what the verdict's fixed rules say."""

    pages: tuple[tuple[int, int], ...]
    x: np.ndarray
    y: np.ndarray
    # True/False where the shared rules settle a pair (too short, one address).
    fixed: tuple[bool | None, ...]
    # A quoted blurb: never a copy, whatever the score.
    vetoed: np.ndarray
    # Pairs the model is fitted on.
    near: np.ndarray
    substitution: np.ndarray
    overlap: np.ndarray
    # Published over a day apart: the product asks a higher score of these.
    days_apart: np.ndarray

    def decide(
        self, rows: np.ndarray, score: np.ndarray, threshold: float, max_substitution: float
    ) -> np.ndarray:
        needed = np.where(self.days_apart[rows], max(threshold, DAYS_APART_THRESHOLD), threshold)
        limit = np.where(
            self.days_apart[rows],
            min(max_substitution, DAYS_APART_MAX_SUBSTITUTION),
            max_substitution,
        )
        said = (score >= needed) & ~self.vetoed[rows] & (self.substitution[rows] < limit)
        for n, k in enumerate(rows.tolist()):
            if self.fixed[k] is not None:
                said[n] = self.fixed[k]
        return said


def gap(substitution: np.ndarray, copy: np.ndarray, overlap: np.ndarray) -> float:
    """Halfway between the most substituted copy and the next non-copy above it,
    among non-copies that overlap enough for containment alone to link them."""
    most = float(substitution[copy == 1].max()) if (copy == 1).any() else 0.0
    above = substitution[(copy == 0) & (substitution > most) & (overlap >= VETO_OVERLAP)]
    return (most + float(above.min())) / 2 if above.size else 1.0


class Fold:
    """A model fitted without some families, with its threshold from its own pages."""

    def __init__(self, pairs: Pairs, groups: Sequence[str], train_pages: Sequence[int]) -> None:
        keep = np.zeros(len(groups), dtype=bool)
        keep[list(train_pages)] = True
        ends = np.array(pairs.pages)
        rows = np.flatnonzero(keep[ends[:, 0]] & keep[ends[:, 1]])
        # Fitted where the decision is made: pairs that share something. The index
        # proposes few other pairs, and the easy thousands would steer the fit.
        hard = rows[pairs.near[rows]]
        self.max_substitution = gap(pairs.substitution[hard], pairs.y[hard], pairs.overlap[hard])
        self.w = fit(pairs.x[hard], pairs.y[hard])
        trained = scores(pairs.x[rows], self.w)
        # The threshold that links the training pages best, among those pages only.
        index = {page: n for n, page in enumerate(train_pages)}
        local_groups = [groups[p] for p in train_pages]
        best = (-1.0, 0.5)
        for threshold in THRESHOLDS:
            said = pairs.decide(rows, trained, threshold, self.max_substitution)
            linked = [
                (index[pairs.pages[k][0]], index[pairs.pages[k][1]]) for k in rows[said].tolist()
            ]
            f1 = cluster_metrics(len(train_pages), local_groups, linked)[2]
            best = max(best, (f1, -threshold))
        self.threshold = -best[1]


def evaluate(
    names: Sequence[str], pairs: Pairs, labels: Sequence[dict[str, str]], folds: int
) -> tuple[tuple[float, float, float], list[bool], Fold]:
    groups = [label["group"] for label in labels]
    families = sorted({label["family"] for label in labels})
    fold_of_family = {family: n % folds for n, family in enumerate(families)}
    fold = [fold_of_family[label["family"]] for label in labels]
    models: dict[frozenset[int], Fold] = {}
    decided: list[bool] = []
    for k, (i, j) in enumerate(pairs.pages):
        held = frozenset({fold[i], fold[j]})
        if held not in models:
            models[held] = Fold(
                pairs, groups, [p for p in range(len(labels)) if fold[p] not in held]
            )
        model = models[held]
        row = np.array([k])
        said = pairs.decide(
            row, scores(pairs.x[row], model.w), model.threshold, model.max_substitution
        )
        decided.append(bool(said[0]))
    linked = [pair for pair, yes in zip(pairs.pages, decided, strict=True) if yes]
    metrics = cluster_metrics(len(labels), groups, linked)
    final = Fold(pairs, groups, list(range(len(labels))))
    return metrics, decided, final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="?", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.labels.is_file():
        print(
            f"error: {args.labels}: no such file (the dev set lives in ../shared)", file=sys.stderr
        )
        return 2
    labels = load(args.labels)
    settings = DedupSettings()
    rows = measure(labels, settings)
    groups = [label["group"] for label in labels]
    rules = RuleVerdict(settings)
    calibrated = CalibratedVerdict(settings)
    # Pairs the shared rules settle (too short to judge, one address) are not fitted on.
    # The shared rules settle some pairs, and pairs of short texts go to the rules.
    fixed = tuple(
        s.copy
        if (s := settled(f, settings)) is not None
        else rules.judge(f).copy
        if outside_fitted_range(f)
        else None
        for _, _, f in rows
    )
    vetoed = np.array([quoted_blurb(f, settings) for _, _, f in rows])
    y = np.array([float(groups[i] == groups[j]) for i, j, _ in rows])
    near = np.array([f.text.short_containment >= NEAR for _, _, f in rows])
    substitution = np.array([f.text.substitution for _, _, f in rows])
    overlap = np.array([f.text.short_containment for _, _, f in rows])
    days_apart = np.array([f.lag_seconds > MAX_CALIBRATED_LAG for _, _, f in rows])
    print(
        f"pages {len(labels)}, pairs {len(rows)} ({int(near.sum())} fitted on: three-word "
        f"shingle containment >= {NEAR}), copy pairs {int(y.sum())}, {args.folds} folds by family"
    )
    for name, verdict in (
        ("rules (today's RuleVerdict)", rules),
        ("calibrated (as shipped)", calibrated),
    ):
        linked = [(i, j) for i, j, f in rows if verdict.judge(f).copy]
        p, r, f1 = cluster_metrics(len(labels), groups, linked)
        print(f"  {name:34} P {p:.3f} R {r:.3f} F1 {f1:.3f}  (in sample for the shipped weights)")
    results = []
    for names in CANDIDATES:
        x = np.array([[INPUTS[name](f) for name in names] for _, _, f in rows])
        pairs = Pairs(
            tuple((i, j) for i, j, _ in rows),
            x,
            y,
            fixed,
            vetoed,
            near,
            substitution,
            overlap,
            days_apart,
        )
        (p, r, f1), decided, final = evaluate(names, pairs, labels, args.folds)
        results.append((f1, -len(names), names, p, r, decided, final))
        print(f"  out of fold {'+'.join(names):70} P {p:.3f} R {r:.3f} F1 {f1:.3f}")
    f1, _, names, p, r, decided, final = max(results, key=lambda t: (t[0], t[1]))
    print(f"best out of fold: {'+'.join(names)}: P {p:.3f} R {r:.3f} F1 {f1:.3f}")
    relation = [label.get("relation", "?") for label in labels]
    missed: Counter[str] = Counter()
    false: Counter[str] = Counter()
    for (i, j, _), yes in zip(rows, decided, strict=True):
        copy = groups[i] == groups[j]
        kinds = "/".join(sorted((relation[i], relation[j])))
        if copy and not yes:
            missed[kinds] += 1
        elif yes and not copy:
            false[kinds] += 1
            print(f"  false pair {labels[i]['id']} ~ {labels[j]['id']} ({kinds})")
    print("missed copy pairs by relation:", dict(missed.most_common()))
    print("false pairs by relation:", dict(false.most_common()))
    weights = {name: round(float(w), 3) for name, w in zip(names, final.w, strict=False)}
    print("FITTED_WEIGHTS =", weights)
    print(f"FITTED_BIAS = {final.w[-1]:.3f}")
    print(f"FITTED_THRESHOLD = {final.threshold}")
    copies = substitution[near & (y == 1)]
    print(
        f"MAX_SUBSTITUTION = {final.max_substitution:.3f}  "
        f"# most substituted copy {copies.max():.3f}"
    )
    print(f"fit_verdict: inputs={'+'.join(names)} precision={p:.4f} recall={r:.4f} f1={f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
