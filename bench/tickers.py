"""How well does aggregator.tickers find instruments, and what does it find in our data?

    bench/tickers.py [--labels PATH]   (default: tests/data/tickers.json)

1. Scores `extract_tickers` on the hand-labelled sentences in PATH (a JSON list of
   {"text", "expected"}; written for this project, not taken from any publisher):
   precision = TP / (TP + FP) and recall = TP / (TP + FN), counted over (item, ticker)
   pairs, and lists every item where the result differs from its label. The labels
   include a few forms the extractor deliberately does not read (a bare "(ARDR)" after a
   company name, "NVDA.O" without angle brackets, "EUR-USD"), so recall stays honest.
2. Runs it over every item of data/demo/*.xml (xml.etree; HTML stripped with a regex)
   and of tests/data/labelled.json (title + text), and prints the tickers found next to
   each item's title, for a human to judge. Those items carry no ticker labels.
3. Prints the mean time per item over labelled.json (informative only).

The last line reads
    tickers: labelled_items=N precision=P recall=R found_in_demo=K found_in_labelled=M
where K and M count (item, ticker) pairs. Standard library only.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from aggregator.text import extract_tickers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "tests" / "data" / "tickers.json"
DEMO = ROOT / "data" / "demo"
LABELLED = ROOT / "tests" / "data" / "labelled.json"

_ATOM = "{http://www.w3.org/2005/Atom}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_TAG = re.compile(r"<[^>]*>")


def strip_html(markup: str) -> str:
    """Tags removed first, then entities decoded, so an escaped <AAPL.O> survives."""
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def demo_items(path: Path) -> list[tuple[str, str]]:
    """(title, text) of each RSS item or Atom entry; the fullest body the item has."""
    root = ET.parse(path).getroot()
    items = []
    for node in root.iter("item"):
        body = node.findtext(_CONTENT) or node.findtext("description") or ""
        items.append((node.findtext("title") or "", strip_html(body)))
    for node in root.iter(f"{_ATOM}entry"):
        body = node.findtext(f"{_ATOM}content") or node.findtext(f"{_ATOM}summary") or ""
        items.append((node.findtext(f"{_ATOM}title") or "", strip_html(body)))
    return items


def score(labels: list[dict[str, object]]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    print(f"== hand-labelled sentences: {len(labels)} items")
    for label in labels:
        text = str(label["text"])
        expected = {str(t) for t in label["expected"]}  # type: ignore[attr-defined]
        found = set(extract_tickers("", text))
        tp += len(found & expected)
        fp += len(found - expected)
        fn += len(expected - found)
        if found != expected:
            extra = ", ".join(sorted(found - expected)) or "-"
            missed = ", ".join(sorted(expected - found)) or "-"
            print(f"  FP [{extra}] FN [{missed}]  {text[:90]}")
    return tp, fp, fn


def show(name: str, items: list[tuple[str, str]]) -> int:
    """Print each item's tickers with its title; returns the (item, ticker) pairs found."""
    pairs = 0
    with_tickers = 0
    lines = []
    for title, text in items:
        found = extract_tickers(title, text)
        pairs += len(found)
        with_tickers += bool(found)
        lines.append(f"  {', '.join(found) or '-':<32} {title[:80]}")
    print(f"== {name}: {len(items)} items, {with_tickers} with tickers, {pairs} tickers")
    print("\n".join(lines))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    args = parser.parse_args()
    try:
        labels = json.loads(args.labels.read_text("utf-8"))
        labelled = json.loads(LABELLED.read_text("utf-8"))
    except (OSError, ValueError) as e:
        print(f"tickers: cannot read labels: {e}", file=sys.stderr)
        return 2

    tp, fp, fn = score(labels)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"  tp={tp} fp={fp} fn={fn}")

    demo = [item for path in sorted(DEMO.glob("*.xml")) for item in demo_items(path)]
    found_in_demo = show("data/demo/*.xml", demo)
    items = [(str(item["title"]), str(item["text"])) for item in labelled]
    found_in_labelled = show(LABELLED.name, items)

    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for title, text in items:
            extract_tickers(title, text)
    per_item = (time.perf_counter() - start) / (rounds * len(items)) * 1e6
    words = sum(len(text.split()) for _, text in items) / len(items)
    print(f"speed: {per_item:.0f} us per item (mean {words:.0f} words, {LABELLED.name})")

    print(
        f"tickers: labelled_items={len(labels)} precision={precision:.3f} recall={recall:.3f}"
        f" found_in_demo={found_in_demo} found_in_labelled={found_in_labelled}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
