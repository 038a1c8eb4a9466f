"""Boilerplate learning must not erase a story (issue 17, case 7; issue 16).

A publisher's feed that carries one article many times (a backfill with repeated copies,
three takes of one story) must not learn the article's own paragraphs as its chrome:
they would be cut from every later copy and nothing would link. Run as an operator runs
it: `aggregator import` of a JSONL archive, then `items --json`, both real processes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.test_cli import run, write_config

ARTICLE = [
    "Harwell Energy said on Thursday it would cut its capital spending by 12 per cent next "
    "year and return more cash to shareholders, after a slump in natural gas prices wiped "
    "340 million dollars off its third-quarter profit.",
    "The company now expects to spend between 4.1 billion and 4.3 billion dollars in 2027, "
    "down from 4.7 billion this year, chief executive Maren Tolliver told analysts on a "
    "conference call, adding that drilling in the northern basin would slow.",
    "Harwell raised its quarterly dividend by two cents to 58 cents a share and said it would "
    "buy back up to 1.5 billion dollars of stock over the next 18 months.",
    "Shares in Harwell rose 3.4 per cent in early trading, outperforming a broader index of "
    "energy stocks that was little changed on the day.",
]
PUBLISHERS = [f"Desk {n}" for n in range(7)]
COPIES_EACH = 8


def other_story(publisher: str, n: int) -> list[str]:
    words = " ".join(f"{publisher.split()[1]}w{n}x{k}" for k in range(60))
    return [f"Port operators reported {n} delays on Tuesday. {words}."]


def test_repeated_copies_of_one_article_in_each_feed_still_link(tmp_path: Path) -> None:
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    records = []
    for p, publisher in enumerate(PUBLISHERS):
        disclaimer = f"Disclaimer: {publisher} does not give investment advice. Trade at your risk."
        # The site's other stories carry its disclaimer too: that line is its chrome.
        for n in range(4):
            records.append(
                {
                    "title": f"Port delays {n}",
                    "url": f"https://desk{p}.example/ports-{n}",
                    "published": (start - timedelta(days=1, minutes=n)).isoformat(),
                    "publisher": publisher,
                    "text": "\n".join([*other_story(publisher, n), disclaimer]),
                }
            )
        for copy in range(COPIES_EACH):
            records.append(
                {
                    "title": "Harwell Energy cuts spending, lifts dividend",
                    "url": f"https://desk{p}.example/harwell-{copy}",
                    "published": (start + timedelta(minutes=10 * p + copy)).isoformat(),
                    "publisher": publisher,
                    "text": "\n".join([*ARTICLE, disclaimer]),
                }
            )
    archive = tmp_path / "archive.jsonl"
    archive.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = write_config(tmp_path / "config.toml", "")

    imported = run("--config", str(config), "import", str(archive), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    listed = run("--config", str(config), "items", "--json", "--limit", "0", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    copies = [i for i in items if "/harwell-" in i["url"]]
    assert len(copies) == len(PUBLISHERS) * COPIES_EACH
    # One story: the first publisher's first copy and every copy after it.
    assert len({i["story_id"] for i in copies}) == 1, sorted(
        (i["url"], i["story_id"]) for i in copies
    )
    # The other stories stay their own.
    others = [i for i in items if "/ports-" in i["url"]]
    assert len({i["story_id"] for i in others}) == len(others)
