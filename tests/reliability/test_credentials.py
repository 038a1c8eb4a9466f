"""Issue 17, case 8: credentials in a feed URL were stored and shown in plain text.

`https://user:pass@host/feed` went into feeds.url, feeds.config_url and every
fetches.url, and so into `feeds --json`, `feeds export` and the web pages; a token in
the query string went the same way. Now the URL is stored and shown without
user:password@ and with secret query values as "***"; the fetcher gets the secrets
from the config (or the environment variable it names) and sends them to the
configured origin only.

Real parts throughout: HTTP servers on loopback (pytest-httpserver) that check Basic
auth and tokens, a SQLite file in tmp_path read back as raw bytes, and the
`aggregator` CLI in subprocesses.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import settings_from_mapping
from aggregator.fetch import Fetcher
from aggregator.models import FeedConfig, FetchOutcome, FetchRequest
from aggregator.store import Store
from aggregator.text.urls import is_secret_param, redact_text, redact_url
from tests.feeds import NOW, market_items, rss
from tests.test_cli import EXE, closed_port, run

USER = "desk-reader"
# A "/" and a "+" so the percent-encoded form differs from the plain one.
PASSWORD = "Zq9/hunter2+pw"
TOKEN = "tok-7f3a9c1e55d0"
PASSWORD_ENV = "AGGREGATOR_TEST_DESK_PASSWORD"
FEED = rss(market_items(3))


def secret_forms(*secrets: str) -> list[str]:
    forms = {form for s in secrets for form in (s, quote(s, safe=""), quote_plus(s))}
    return sorted(forms)


def write_config(tmp_path: Path, feeds: str, *, mode: int = 0o600) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "agg.db"\n\n[polling]\ninterval = "15m"\ntimeout = "5s"\n\n' + feeds,
        encoding="utf-8",
    )
    config.chmod(mode)
    return config


def feed_table(name: str, url: str, extra: str = "") -> str:
    return f'[[feeds]]\nname = "{name}"\npublisher = "Desk"\nurl = "{url}"\n{extra}\n'


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run("--config", str(tmp_path / "config.toml"), *args, cwd=tmp_path, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def poll_reports(
    tmp_path: Path, *options: str, env: dict[str, str] | None = None
) -> tuple[dict[str, dict[str, object]], subprocess.CompletedProcess[str]]:
    result = cli(tmp_path, *options, "poll", "--all", "--json", env=env)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    return {str(r["feed"]): r for r in reports}, result


def leaks(tmp_path: Path | None, secrets: list[str], outputs: dict[str, str]) -> list[str]:
    """Where any form of a secret appears: the database's files in tmp_path byte for
    byte (agg.db, -wal, -shm), and each named output."""
    found = []
    files = sorted(tmp_path.glob("agg.db*")) if tmp_path is not None else []
    assert files or tmp_path is None, "no database written"
    for path in files:
        data = path.read_bytes()
        found += [f"{path.name}: {s!r}" for s in secrets if s.encode() in data]
    for label, text in outputs.items():
        found += [f"{label}: {s!r}" for s in secrets if s in text]
    return found


def basic_auth_feed(body: bytes = FEED) -> Callable[[Request], Response]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != expected:
            return Response("login", status=401, headers={"WWW-Authenticate": 'Basic realm="d"'})
        return Response(body, content_type="application/rss+xml")

    return handler


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def with_userinfo(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{USER}:{quote(PASSWORD, safe='')}@{rest}"


# --- 1. Basic auth: sent, and nowhere stored or shown ----------------------------------


FORMS = {
    "in-the-url": lambda url: feed_table("desk", with_userinfo(url)),
    "password_env": lambda url: feed_table(
        "desk", url, f'username = "{USER}"\npassword_env = "{PASSWORD_ENV}"'
    ),
    "password-in-a-private-file": lambda url: feed_table(
        "desk", url, f'username = "{USER}"\npassword = "{PASSWORD}"'
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_credentialed_feed_is_polled_and_its_password_is_stored_and_shown_nowhere(
    httpserver: HTTPServer, tmp_path: Path, form: str
) -> None:
    httpserver.expect_request("/feed").respond_with_handler(basic_auth_feed())
    plain = base_url(httpserver) + "/feed"
    write_config(tmp_path, FORMS[form](plain))
    env = {PASSWORD_ENV: PASSWORD}

    reports, polled = poll_reports(tmp_path, "--log-level", "debug", env=env)
    # Answered 200 only with the right Authorization: the credentials were sent.
    assert (reports["desk"]["outcome"], reports["desk"]["items_new"]) == ("ok", 3)
    assert reports["desk"]["url"] == plain
    assert [r.headers.get("Authorization", "")[:6] for r, _ in httpserver.log] == ["Basic "]

    listed = cli(tmp_path, "feeds", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (feed,) = json.loads(listed.stdout)
    assert (feed["url"], feed["config_url"], feed["status"]) == (plain, plain, "ok")
    exported = cli(tmp_path, "feeds", "export", env=env)
    assert exported.returncode == 0, exported.stderr
    assert f'xmlUrl="{plain}"' in exported.stdout
    # A 0600 file holding a password draws no warning.
    assert "holds a password" not in listed.stderr + exported.stderr

    outputs = {
        "poll stdout": polled.stdout,
        "poll stderr (debug log)": polled.stderr,
        "feeds --json": listed.stdout,
        "feeds export": exported.stdout,
    }
    secrets = secret_forms(PASSWORD)
    if form == "in-the-url":
        secrets.append(f"{USER}:")  # no userinfo at all, not even the user name
    assert leaks(tmp_path, secrets, outputs) == []


def test_the_web_pages_show_no_credentials(httpserver: HTTPServer, tmp_path: Path) -> None:
    pytest.importorskip("datasette", reason="the web extra is not installed")
    httpserver.expect_request("/feed").respond_with_handler(basic_auth_feed())
    url = f"{with_userinfo(base_url(httpserver))}/feed?region=eu&api_key={TOKEN}"
    write_config(tmp_path, feed_table("desk", url))
    reports, _ = poll_reports(tmp_path)
    assert reports["desk"]["outcome"] == "ok"

    process = subprocess.Popen(
        [EXE, "--db", str(tmp_path / "agg.db"), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        found = re.search(r"http://\S+/", process.stdout.readline())
        assert found, process.stderr.read() if process.stderr else ""
        pages = {}
        for path in ("agg/feeds", "agg/feeds.json", "agg/fetches", "agg/fetches.json"):
            with urllib.request.urlopen(found.group(0) + path, timeout=10) as response:
                pages[path] = response.read().decode()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "api_key=***" in pages["agg/feeds.json"]
    assert leaks(tmp_path, [*secret_forms(PASSWORD, TOKEN), f"{USER}:"], pages) == []


# --- 2. Errors: an unreachable feed, a redirect loop ----------------------------------


def test_fetch_errors_of_credentialed_feeds_hold_no_secret(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    def loop(request: Request) -> Response:
        # A server that quotes the token back in each Location: the error names the last.
        hop = int(request.args.get("hop", "0")) + 1
        location = f"/loop?api_key={request.args.get('api_key', '')}&hop={hop}"
        return Response("", status=302, headers={"Location": location})

    httpserver.expect_request("/loop").respond_with_handler(loop)
    down = with_userinfo(f"http://127.0.0.1:{closed_port()}") + "/feed"
    looping = with_userinfo(base_url(httpserver)) + f"/loop?api_key={TOKEN}"
    write_config(tmp_path, feed_table("down", down) + feed_table("loop", looping))

    reports, polled = poll_reports(tmp_path, "--log-level", "info", "--log-format", "json")
    assert reports["down"]["outcome"] == "network_error"
    assert str(reports["down"]["error"]).startswith("connection failed")
    assert reports["loop"]["outcome"] == "refused"
    error = str(reports["loop"]["error"])
    assert error.startswith("more than 5 redirects, last to http://"), error
    assert "api_key=***&hop=6" in error
    # The token was sent on every hop (it is the server's own Location).
    assert {r.args.get("api_key") for r, _ in httpserver.log} == {TOKEN}
    logged = [json.loads(line) for line in polled.stderr.splitlines()]
    assert {line["poll"]["feed"] for line in logged if "poll" in line} == {"down", "loop"}

    listed = cli(tmp_path, "feeds", "--json")
    assert {f["name"]: f["status"] for f in json.loads(listed.stdout)} == {
        "down": "error",
        "loop": "error",
    }
    outputs = {"poll": polled.stdout, "json log": polled.stderr, "feeds": listed.stdout}
    assert leaks(tmp_path, [*secret_forms(PASSWORD, TOKEN), f"{USER}:"], outputs) == []


def test_a_missing_password_variable_refuses_the_fetch_and_leaves_other_commands_working(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/feed").respond_with_handler(basic_auth_feed())
    extra = f'username = "{USER}"\npassword_env = "{PASSWORD_ENV}_UNSET"'
    write_config(tmp_path, feed_table("desk", base_url(httpserver) + "/feed", extra))

    listed = cli(tmp_path, "feeds", "--json")
    assert listed.returncode == 0, listed.stderr
    reports, _ = poll_reports(tmp_path)
    assert reports["desk"]["outcome"] == "refused"
    assert reports["desk"]["error"] == (
        f"environment variable {PASSWORD_ENV}_UNSET (feeds[0].password_env) is not set"
    )
    assert httpserver.log == []  # asked nothing of the server without its password


# --- 3. A secret query parameter: sent, shown as *** ----------------------------------


def test_a_secret_query_parameter_is_sent_but_stored_shown_and_logged_as_stars(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    def needs_token(request: Request) -> Response:
        if request.args.get("api_key") != TOKEN or request.args.get("region") != "eu":
            return Response("bad key", status=403)
        if request.path == "/old":  # a permanent move, quoting the token back
            return Response("", status=301, headers={"Location": f"/new?region=eu&api_key={TOKEN}"})
        return Response(FEED, content_type="application/rss+xml")

    httpserver.expect_request("/old").respond_with_handler(needs_token)
    httpserver.expect_request("/new").respond_with_handler(needs_token)
    base = base_url(httpserver)
    write_config(tmp_path, feed_table("desk", f"{base}/old?region=eu&api_key={TOKEN}"))

    first, polled = poll_reports(tmp_path, "--log-level", "debug")
    assert (first["desk"]["outcome"], first["desk"]["items_new"]) == ("ok", 3)
    listed = cli(tmp_path, "feeds", "--json")
    (feed,) = json.loads(listed.stdout)
    # The move is stored, redacted; the configured URL is shown redacted too.
    assert feed["url"] == f"{base}/new?region=eu&api_key=***"
    assert feed["config_url"] == f"{base}/old?region=eu&api_key=***"
    exported = cli(tmp_path, "feeds", "export")
    assert f'xmlUrl="{base}/old?region=eu&amp;api_key=***"' in exported.stdout

    # The next poll starts from the stored URL and still sends the real token.
    second, polled_again = poll_reports(tmp_path, "--log-level", "debug")
    assert (second["desk"]["outcome"], second["desk"]["items_new"]) == ("ok", 0)
    assert [(r.path, r.args.get("api_key")) for r, _ in httpserver.log] == [
        ("/old", TOKEN),
        ("/new", TOKEN),
        ("/new", TOKEN),
    ]
    outputs = {
        "first poll": polled.stdout + polled.stderr,
        "second poll": polled_again.stdout + polled_again.stderr,
        "feeds --json": listed.stdout,
        "feeds export": exported.stdout,
    }
    assert leaks(tmp_path, secret_forms(TOKEN), outputs) == []


# --- 4. Secrets go to the configured origin only --------------------------------------


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.mark.parametrize("status", [302, 301])
def test_a_redirect_to_another_origin_gets_neither_password_nor_token(
    httpserver: HTTPServer, other_server: HTTPServer, tmp_path: Path, status: int
) -> None:
    def moved(request: Request) -> Response:
        if request.args.get("api_key") != TOKEN:
            return Response("bad key", status=403)
        # Keeps the rest of the query but, as a redirect elsewhere should, drops the key.
        target = other_server.url_for("/feed") + "?region=eu&api_key=***"
        return Response("", status=status, headers={"Location": target})

    httpserver.expect_request("/feed").respond_with_handler(moved)
    other_server.expect_request("/feed").respond_with_data(FEED, content_type="application/rss+xml")
    url = f"{with_userinfo(base_url(httpserver))}/feed?region=eu&api_key={TOKEN}"
    settings = settings_from_mapping(
        {"feeds": [{"name": "desk", "url": url}]}, source=None, base_dir=tmp_path
    )
    config: FeedConfig = settings.feeds[0]
    assert config.url == f"{base_url(httpserver)}/feed?region=eu&api_key=***"
    request = FetchRequest(config.url, None, None, config.polling, config.credentials)

    with Fetcher() as fetcher:
        result = fetcher.fetch(request)
    assert result.outcome is FetchOutcome.OK
    ((first, _),) = httpserver.log
    ((elsewhere, _),) = other_server.log
    assert first.headers.get("Authorization", "").startswith("Basic ")
    assert "Authorization" not in elsewhere.headers
    # "***" is not filled in for another origin: the token stays with its host.
    assert elsewhere.args.get("api_key") == "***"
    assert TOKEN not in repr(result) and PASSWORD not in repr(config)
    # A permanent move to a URL that holds no secret of ours is stored as is.
    expected = other_server.url_for("/feed") + "?region=eu&api_key=***" if status == 301 else None
    assert result.permanent_url == expected


# --- 5. The config and a database from before ------------------------------------------


def test_a_password_in_a_readable_config_warns_and_a_bad_url_error_quotes_no_secret(
    tmp_path: Path,
) -> None:
    extra = f'username = "{USER}"\npassword = "{PASSWORD}"'
    write_config(tmp_path, feed_table("desk", "https://feeds.example/f", extra), mode=0o644)
    listed = cli(tmp_path, "feeds", "--json")
    assert listed.returncode == 0, listed.stderr
    (warning,) = [line for line in listed.stderr.splitlines() if "aggregator.config" in line]
    assert "feeds[0]: this file holds a password and other users can read it" in warning
    assert "chmod 600" in warning and PASSWORD not in warning

    # An unescaped "/" in the password: urllib reads "Zq9" as the port and says so.
    unparsable = f"https://{USER}:{PASSWORD}@feeds.example/f"
    write_config(tmp_path, feed_table("desk", unparsable))
    failed = cli(tmp_path, "feeds", "--json")
    assert failed.returncode == 2
    (line,) = failed.stderr.splitlines()
    assert "feeds[0].url: the URL is not a valid URL" in line
    assert leaks(None, ["Zq9", "hunter2"], {"error": line}) == []


def test_an_opml_import_keeps_credentials_for_the_config_but_prints_none(
    tmp_path: Path,
) -> None:
    secret = f"https://{USER}:{quote(PASSWORD, safe='')}@private.example/rss?token={TOKEN}"
    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body>'
        f'<outline text="Private Desk" xmlUrl="{secret.replace("&", "&amp;")}"/>'
        f'<outline text="Old" xmlUrl="ftp://{USER}:{quote(PASSWORD, safe="")}@old.example/"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    config = write_config(tmp_path, feed_table("desk", "https://feeds.example/f"))

    imported = cli(tmp_path, "feeds", "import", str(opml))
    assert imported.returncode == 0, imported.stderr
    assert "+ private-desk  Private Desk  https://private.example/rss?token=***" in (
        imported.stdout
    )
    assert "<ftp://old.example/>: not an http(s) URL" in imported.stderr
    # The config, where credentials belong, has the URL as the reader gave it.
    assert f'url = "{secret}"' in config.read_text(encoding="utf-8")
    again = cli(tmp_path, "feeds", "import", str(opml))
    assert "0 feeds added" in again.stdout  # the redacted forms compare equal
    outputs = {"import": imported.stdout + imported.stderr, "again": again.stdout + again.stderr}
    assert leaks(None, [*secret_forms(PASSWORD, TOKEN), f"{USER}:"], outputs) == []


def test_credentials_stored_before_are_cleaned_at_the_next_config_sync(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/feed").respond_with_handler(basic_auth_feed())
    plain = base_url(httpserver) + "/feed"
    raw = with_userinfo(plain) + f"?api_key={TOKEN}"
    # What an aggregator from before this fix wrote: the URL as configured.
    with Store.open(tmp_path / "agg.db") as store:
        store.sync_feeds([FeedConfig(name="desk", publisher="Desk", url=raw)], NOW)
    write_config(tmp_path, feed_table("desk", raw))

    reports, _ = poll_reports(tmp_path)
    assert reports["desk"]["outcome"] == "ok"
    with sqlite3.connect(tmp_path / "agg.db") as conn:
        rows = conn.execute("SELECT url, config_url FROM feeds").fetchall()
        fetched = conn.execute("SELECT url FROM fetches").fetchall()
    assert rows == [(f"{plain}?api_key=***", f"{plain}?api_key=***")]
    assert fetched == [(f"{plain}?api_key=***",)]


def test_migration_13_cleans_the_fetch_log_and_feeds_that_left_the_config(
    tmp_path: Path,
) -> None:
    raw = with_userinfo("https://gone.example/feed") + f"?api_key={TOKEN}"
    db = tmp_path / "agg.db"
    # A database as an aggregator from before the fix left it: a feed since dropped from
    # the config, and its fetch log, with the URL as configured.
    with Store.open(db) as store:
        store.sync_feeds([FeedConfig(name="gone", publisher="Gone", url=raw)], NOW)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO fetches (feed_id, started_at, url, outcome, error, bytes, "
            "items_seen, items_new, items_updated, duration) "
            "VALUES (1, '2026-01-01T00:00:00Z', ?, 'network_error', ?, 0, 0, 0, 0, 0)",
            (raw, f"more than 5 redirects, last to {raw}"),
        )
        conn.execute("DELETE FROM schema_migrations WHERE version = 13")
    with Store.open(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert conn.execute("SELECT url FROM feeds").fetchall() == [
            ("https://gone.example/feed?api_key=***",)
        ]
        ((url, error),) = conn.execute("SELECT url, error FROM fetches").fetchall()
    assert url == "https://gone.example/feed?api_key=***"
    assert error == "more than 5 redirects, last to https://gone.example/feed?api_key=***"
    assert leaks(tmp_path, secret_forms(PASSWORD, TOKEN), {}) == []


# --- 6. The redaction rules themselves --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p%2Fq@feeds.example/rss", "https://feeds.example/rss"),
        ("https://token@feeds.example/rss", "https://feeds.example/rss"),
        (
            "https://feeds.example/rss?a=1&token=x&b=2",
            "https://feeds.example/rss?a=1&token=***&b=2",
        ),
        (
            "https://s3.example/f?X-Amz-Signature=ab&X-Amz-Credential=cd&X-Amz-Expires=60",
            "https://s3.example/f?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Expires=60",
        ),
        (
            "https://a.example/f?apiKey=1;sig=2#access_token=3",
            "https://a.example/f?apiKey=***;sig=***#access_token=***",
        ),
        (
            "https://a.example/f?client_secret=1&key=&monkey=3",
            "https://a.example/f?client_secret=***&key=&monkey=3",
        ),
        # Not credentials: an @ in the path, and parameters that only sound alike.
        ("https://medium.example/feed/@desk", "https://medium.example/feed/@desk"),
        (
            "https://a.example/f?keyword=gold&author=x&page=2",
            "https://a.example/f?keyword=gold&author=x&page=2",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown


def test_redact_text_covers_urls_and_the_secrets_it_is_given() -> None:
    text = f'GET "https://{USER}:pw@h.example/x?token={TOKEN}" failed: {quote(PASSWORD, safe="")}'
    assert redact_text(text, [PASSWORD]) == 'GET "https://h.example/x?token=***" failed: ***'
    assert [is_secret_param(n) for n in ("API-KEY", "private_token", "tokens", "key")] == [
        True,
        True,
        False,
        True,
    ]
