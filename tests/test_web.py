"""`aggregator serve`: Datasette over a demo store, in a real process and a real browser."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("datasette", reason="the web extra is not installed")

from aggregator.store.views import table_columns
from aggregator.web import HIDDEN, TABLES, ChainItem, build, chain_tree, lag_text
from tests.test_cli import EXE, REPO, assert_one_line_error, run

SCREENSHOTS = os.environ.get("AGGREGATOR_SCREENSHOTS")  # a folder to keep them in


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("web") / "demo.db"
    result = subprocess.run(
        [EXE, "--db", str(db), "demo"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    # The demo ends by telling the user how to look at what it stored.
    assert result.stdout.rstrip().splitlines()[-2:] == [
        f"  aggregator --db {db} serve                         # browse stories and chains",
        f"  aggregator --db {db} report --output report.html   # syndication charts",
    ]
    return db


def _start(db: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [EXE, "--db", str(db), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once the socket listens
    found = re.search(r"http://\S+/", line)
    if found is None:
        process.kill()
        raise AssertionError(f"serve did not start: {line!r} {process.communicate()[1]}")
    return process, found.group(0)


@pytest.fixture(scope="module")
def server(demo_db: Path) -> Iterator[str]:
    process, url = _start(demo_db)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _rows(server: str, path: str, **params: str) -> list[dict[str, object]]:
    query = urllib.parse.urlencode({**params, "_shape": "array"})
    status, body = _get(f"{server}{path}.json?{query}")
    assert status == 200, body
    rows: list[dict[str, object]] = json.loads(body)
    return rows


# -- what the pages say ---------------------------------------------------------------


def test_metadata_describes_every_table_and_column(demo_db: Path) -> None:
    schema = table_columns(demo_db)
    fts_shadow = {name for name in schema if name.startswith("items_fts_")}
    unlisted = set(schema) - set(TABLES) - set(HIDDEN) - fts_shadow
    assert unlisted == set(), f"describe these tables in aggregator/web.py: {sorted(unlisted)}"
    for table, (title, description, columns) in TABLES.items():
        assert title and description, table
        assert table in schema, f"{table} is described but not in the schema"
        missing = [c for c in schema[table] if not columns.get(c)]
        assert missing == [], f"describe these {table} columns in aggregator/web.py: {missing}"
        stale = sorted(set(columns) - set(schema[table]))
        assert stale == [], f"{table} has no columns {stale}"


def test_shown_and_hidden_tables(server: str) -> None:
    status, body = _get(f"{server}demo.json")
    assert status == 200
    tables = {t["name"]: t for t in json.loads(body)["tables"]}
    shown = {name for name, t in tables.items() if not t["hidden"]}
    assert shown == set(TABLES)
    assert {"signatures", "schema_migrations", "items_fts"} <= {
        name for name, t in tables.items() if t["hidden"]
    }
    status, page = _get(f"{server}demo/items")
    assert status == 200
    assert "Headline." in page  # column descriptions are on the table page


def test_canned_queries_answer_on_the_demo(server: str) -> None:
    stories = _rows(server, "demo/latest_stories", min_copies="1")
    freight = next(s for s in stories if str(s["title"]).startswith("Container freight"))
    assert freight["first_publisher"] == "Meridian Wire"
    assert freight["copies"] == 1
    assert freight["publishers"] == "Meridian Wire, Tidewater Ledger"
    assert freight["minutes_to_last_copy"] == 45
    assert all(int(str(s["copies"])) >= 1 for s in stories)
    every = _rows(server, "demo/latest_stories")
    assert len(every) > len(stories)  # an empty min_copies lists single-item stories too

    chain = _rows(server, "demo/story_chain", item=str(freight["story"]))
    assert [(c["publisher"], c["relation"]) for c in chain] == [
        ("Meridian Wire", "original"),
        ("Tidewater Ledger", "syndicated"),
    ]
    assert chain[1]["parent"] == chain[0]["id"]
    assert chain[1]["lag_minutes"] == 45

    hits = _rows(server, "demo/search", q="copper smelter")
    assert hits and all("copper" in str(h["snippet"]).lower() for h in hits)
    assert _rows(server, "demo/search", q="") == []

    matrix = _rows(server, "demo/syndication_matrix")
    assert {"source": "Pipsight", "copier": "Tradevane", "copies": 2}.items() <= {
        k: v for m in matrix if m["source"] == "Pipsight" for k, v in m.items()
    }.items()
    assert _rows(server, "demo/feeds_in_error") == []


def test_chain_page_of_a_missing_item_is_404(server: str) -> None:
    status, page = _get(f"{server}-/chain/999999")
    assert status == 404
    assert "No item 999999" in page


def test_chain_tree_puts_copies_under_their_parents() -> None:
    def item(id: int, parent: int | None) -> ChainItem:
        return ChainItem(id, parent, "x", "P", "2026-11-01T00:00:00Z", 5, 0.9, 1.0, None, "t", None)

    # 1 <- 2 <- 4, 1 <- 3, and 9 whose parent (8) is not in the story.
    nodes = chain_tree([item(1, None), item(2, 1), item(3, 1), item(4, 2), item(9, 8)])
    assert [(n.item.id, n.depth) for n in nodes] == [(1, 0), (2, 1), (4, 2), (3, 1), (9, 0)]
    assert [lag_text(m) for m in (None, 45, 135, -3, 3000)] == [
        "",
        "+45 min",
        "+2 h 15 min",
        "-3 min",
        "+2 d 2 h",
    ]


# -- read-only ------------------------------------------------------------------------


def _fingerprint(db: Path) -> tuple[str, int, int]:
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            digest.update(part.read_bytes())
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        feeds = conn.execute("SELECT count(*) FROM feeds").fetchone()[0]
    return digest.hexdigest(), items, feeds


def test_writes_through_the_web_view_are_refused(server: str, demo_db: Path) -> None:
    before = _fingerprint(demo_db)
    for sql in (
        "INSERT INTO feeds (name, publisher, url, config_url, created_at) "
        "VALUES ('x', 'X', 'u', 'u', 'now')",
        "UPDATE items SET title = 'defaced'",
        "DELETE FROM items",
        "DROP TABLE items",
    ):
        status, body = _get(f"{server}demo.json?" + urllib.parse.urlencode({"sql": sql}))
        assert status == 400, (sql, body)
        assert "Statement must be a SELECT" in body
    # The JSON write API of later Datasettes, and a POST to a canned query: refused.
    for path in ("demo/feeds/-/insert", "demo/latest_stories", "demo"):
        status, body = _get(f"{server}{path}", b'{"row": {"name": "x"}}')
        assert status == 405, (path, body)
        assert "read-only" in body
    assert _fingerprint(demo_db) == before


def test_even_datasette_write_connection_cannot_write(demo_db: Path) -> None:
    # Defence in depth: a plugin or a writable canned query would use this connection.
    app = build(demo_db)

    async def write() -> None:
        await app.get_database("demo").execute_write("DELETE FROM items")

    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        asyncio.run(write())
    assert _fingerprint(demo_db)[1] > 0


# -- the command's errors ------------------------------------------------------------


def test_serve_without_a_database_is_one_line(tmp_path: Path) -> None:
    line = assert_one_line_error(run("--db", str(tmp_path / "none.db"), "serve", cwd=tmp_path), 1)
    assert "no database at" in line
    assert not (tmp_path / "none.db").exists()


def test_serve_on_a_port_in_use_is_one_line(demo_db: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = run("--db", str(demo_db), "serve", "--port", port, cwd=tmp_path)
    line = assert_one_line_error(result, 2)
    assert f"cannot listen on 127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    ("module", "args"), [("datasette", ["serve"]), ("matplotlib", ["report", "--output", "r.html"])]
)
def test_without_the_web_extra_one_line_says_what_to_install(
    module: str, args: list[str], demo_db: Path, tmp_path: Path
) -> None:
    # A None in sys.modules makes the import fail as if the package were not installed.
    code = (
        f"import sys; sys.modules[{module!r}] = None; from aggregator.cli import main; "
        f"main(['--db', {str(demo_db)!r}, *{args!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    line = assert_one_line_error(result, 1)
    assert "pip install 'aggregator[web]'" in line
    assert module in line


# -- in a real browser --------------------------------------------------------------------


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _need_browser() -> tuple[str, str]:
    paths = _browser_paths()
    reason = (
        "no chromium and chromedriver on PATH (Debian: apt-get install chromium "
        "chromium-driver; .ci/run does it)"
    )
    if paths is None:
        if os.environ.get("AGGREGATOR_REQUIRE_BROWSER"):
            pytest.fail(reason + ", but AGGREGATOR_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    try:
        import selenium  # noqa: F401
    except ImportError:
        if os.environ.get("AGGREGATOR_REQUIRE_BROWSER"):
            raise
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    return paths


def _keep(screenshot: Path) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(SCREENSHOTS) / screenshot.name)


def test_latest_stories_and_a_chain_in_headless_chromium(server: str, tmp_path: Path) -> None:
    chromium, driver_path = _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.get(f"{server}demo/latest_stories?min_copies=1")
        assert "Latest stories" in browser.find_element(By.TAG_NAME, "h1").text
        row = next(
            r
            for r in browser.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")
            if "Container freight rates" in r.text
        )
        assert "Meridian Wire" in row.text and "Tidewater Ledger" in row.text
        browser.save_screenshot(str(tmp_path / "latest-stories.png"))
        _keep(tmp_path / "latest-stories.png")

        row.find_element(By.CSS_SELECTOR, "td.col-story a").click()
        assert "/-/chain/" in browser.current_url
        entries = browser.find_elements(By.CSS_SELECTOR, "ol.chain li")
        assert len(entries) == 2
        original, copy = entries
        assert original.get_attribute("data-depth") == "0"
        assert "Meridian Wire" in original.text and "original" in original.text.lower()
        assert copy.get_attribute("data-depth") == "1"
        assert copy.get_attribute("data-parent") == original.get_attribute("data-item")
        assert "Tidewater Ledger" in copy.text
        assert "+45 min after its parent" in copy.text
        assert "similarity 0.94" in copy.text
        # Under the original and indented: what a reader sees, not just the markup.
        assert copy.location["y"] > original.location["y"] + original.size["height"] / 2
        assert copy.location["x"] >= original.location["x"] + 20
        browser.save_screenshot(str(tmp_path / "chain.png"))
        _keep(tmp_path / "chain.png")
        assert (tmp_path / "chain.png").stat().st_size > 10_000
    finally:
        browser.quit()
