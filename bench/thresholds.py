"""Where the [dedup] thresholds come from: pair statistics on a labelled set.

    bench/thresholds.py [LABELS.json]   (default: tests/data/labelled.json)

For every pair of labelled items it prepares both texts exactly as the linker does
(each site's recurring lines learned from its own items and removed), compares them,
and prints (1) the containment and Jaccard spread of true copies and of the closest
non-copies, (2) a sweep of min_containment with the other defaults fixed, and (3) how
many non-copy pairs each later check (alignment, figures, names, subject) rejects.
Pair-level only: chains and merges are measured by eval_dedup.py.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from aggregator.models import DedupSettings, PreparedText
from aggregator.syndication import compare, is_copy, is_correction
from aggregator.text import line_fingerprint, paragraphs, prepare_body

DEFAULT_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "labelled.json"


def prepared_items(labels: list[dict[str, str]], settings: DedupSettings) -> list[PreparedText]:
    """Each site's boilerplate learned from its own items, as one poll of its feed would."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for label in labels:
        counts[label["site"]].update({line_fingerprint(p) for p in paragraphs(label["text"])})
    sizes = Counter(label["site"] for label in labels)
    result = []
    for label in labels:
        site = label["site"]
        floor = max(settings.boilerplate_min_items, settings.boilerplate_min_share * sizes[site])
        boilerplate = frozenset(line for line, n in counts[site].items() if n >= floor)
        result.append(
            prepare_body(
                label["text"],
                boilerplate,
                shingle_size=settings.shingle_size,
                lead_words=settings.lead_words,
            )
        )
    return result


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LABELS
    labels = json.loads(path.read_text(encoding="utf-8"))
    for label in labels:
        label["text"] = "\n".join(paragraphs(label["text"]))
    settings = DedupSettings()
    prepared = prepared_items(labels, settings)
    rows = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        a, b = prepared[i], prepared[j]
        comparison = compare(a, b, settings.shingle_size)
        same_site = labels[i]["site"] == labels[j]["site"]
        correction = same_site and (
            is_correction(labels[i]["title"]) or is_correction(labels[j]["title"])
        )
        rows.append(
            (
                labels[i]["group"] == labels[j]["group"],
                comparison,
                min(len(a.shingles), len(b.shingles)),
                correction,
                labels[i]["id"],
                labels[j]["id"],
            )
        )

    copies = [r for r in rows if r[0]]
    others = sorted((r for r in rows if not r[0]), key=lambda r: -r[1].containment)
    print(f"labelled set: {path.name}, {len(labels)} items, {len(rows)} pairs")
    print(f"true copy pairs: {len(copies)}")
    for name in ("containment", "jaccard"):
        values = sorted(getattr(r[1], name) for r in copies)
        print(
            f"  {name:11} min {values[0]:.3f}  p10 {values[len(values) // 10]:.3f}  "
            f"median {statistics.median(values):.3f}  max {values[-1]:.3f}"
        )
    print("closest non-copies (by containment):")
    for _, c, _, _, left, right in others[:8]:
        print(
            f"  {c.containment:.3f} jaccard {c.jaccard:.3f} figures missing "
            f"{c.figures_missing}/{c.figures} names {c.name_mismatch:.2f} "
            f"subject {c.subject_missing}  {left} ~ {right}"
        )

    print("min_containment sweep (other checks at their defaults):")
    for threshold in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        trial = replace(settings, min_containment=threshold)
        verdicts = [(r[0], is_copy(r[1], r[2], trial, correction=r[3])) for r in rows]
        tp = sum(1 for truth, said in verdicts if truth and said)
        fp = sum(1 for truth, said in verdicts if not truth and said)
        fn = sum(1 for truth, said in verdicts if truth and not said)
        print(f"  {threshold:.2f}: tp {tp:3} fp {fp:3} fn {fn:3}")

    print("non-copy pairs above min_containment, and the check that stops each:")
    stopped: Counter[str] = Counter()
    for _, c, shorter, correction, _, _ in others:
        if c.containment < settings.min_containment:
            continue
        allowed = int(settings.figure_tolerance * c.figures) + (1 if correction else 0)
        if shorter < settings.min_shingles:
            stopped["too short to judge"] += 1
        elif c.jaccard < settings.min_jaccard and not c.aligned:
            stopped["not aligned (a shared paragraph)"] += 1
        elif c.figures_missing > allowed:
            stopped["figures differ"] += 1
        elif c.subject_missing and not correction:
            stopped["subject differs"] += 1
        elif c.name_mismatch > settings.max_name_mismatch:
            stopped["names differ"] += 1
        else:
            stopped["NOT STOPPED (false link)"] += 1
    for reason, count in stopped.most_common():
        print(f"  {count:3}  {reason}")
    false_links = stopped["NOT STOPPED (false link)"]
    print(
        f"thresholds: pairs={len(rows)} copies={len(copies)} "
        f"min_copy_containment={min(r[1].containment for r in copies):.3f} "
        f"max_other_containment={others[0][1].containment:.3f} false_links={false_links}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
