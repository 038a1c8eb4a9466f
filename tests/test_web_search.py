"""The web view's Search page reads a query as `aggregator search` does.

Plain words with punctuation traders type (EUR/USD, S&P 500, $0.87, fed's, rate-cut)
used to reach FTS5 as query syntax and came back HTTP 400; the page now shares the
CLI's translation, so both find the same items.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("datasette", reason="the web extra is not installed")

from tests.test_cli import run
from tests.test_web import _get, _start

TITLES = [
    "EUR/USD slips below 1.08 as the dollar firms",
    "S&P 500 closes at a record high",
    "U.S. yields climb as inflation cools",
    "Acme Q3 EPS $0.87 beats estimates",
    "Fed's Powell signals patience on policy",
    "Markets price a rate-cut in September",
    "Copper smelter output falls in Chile",
]
# query -> the title it must find (every query here once answered HTTP 400)
QUERIES = {
    "EUR/USD": TITLES[0],
    "S&P 500": TITLES[1],
    "U.S. yields": TITLES[2],
    "Q3 EPS $0.87": TITLES[3],
    "fed's": TITLES[4],
    "rate-cut": TITLES[5],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-search")
    archive = folder / "archive.jsonl"
    archive.write_text(
        "".join(
            json.dumps(
                {
                    "title": title,
                    "url": f"https://wire.example/{n}",
                    "published": f"2026-03-0{n + 1}T09:00:00Z",
                    "publisher": f"Desk {n}",
                    "text": f"{title}. Reported by desk number {n} in its own words.",
                }
            )
            + "\n"
            for n, title in enumerate(TITLES)
        ),
        encoding="utf-8",
    )
    config = folder / "config.toml"
    config.write_text('[storage]\npath = "news.db"\n', encoding="utf-8")
    result = run("--config", str(config), "import", str(archive), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "news.db"


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    process, url = _start(store)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _search_page(server: str, query: str) -> tuple[int, str]:
    return _get(
        f"{server}news/search.json?" + urllib.parse.urlencode({"q": query, "_shape": "array"})
    )


def _cli_titles(store: Path, query: str) -> set[str]:
    result = run("--db", str(store), "search", query, "--json", cwd=store.parent)
    assert result.returncode == 0, result.stderr
    return {hit["title"] for hit in json.loads(result.stdout)}


@pytest.mark.parametrize("query", list(QUERIES), ids=str)
def test_the_search_page_takes_what_traders_type(server: str, store: Path, query: str) -> None:
    status, body = _search_page(server, query)
    assert status == 200, body
    titles = {row["title"] for row in json.loads(body)}
    assert QUERIES[query] in titles
    assert TITLES[6] not in titles  # the copper story matches none of them
    assert titles == _cli_titles(store, query)


def test_the_search_page_still_takes_fts5_syntax(server: str) -> None:
    status, body = _search_page(server, '"rate-cut" OR copper')
    assert status == 200, body
    assert {row["title"] for row in json.loads(body)} == {TITLES[5], TITLES[6]}
    status, body = _search_page(server, "   ")
    assert (status, json.loads(body)) == (200, [])
