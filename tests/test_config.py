"""aggregator.config: config.toml -> one validated Settings object."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aggregator.config import (
    DEFAULT_PATH,
    ENV_VAR,
    config_path,
    load_settings,
    parse_duration,
    settings_from_mapping,
)
from aggregator.errors import ConfigError
from aggregator.models import PollingSettings

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"

FULL_CONFIG = """\
[storage]
path = "state/news.db"
busy_timeout = "30s"

[polling]
interval = "20m"
timeout = "15s"
max_bytes = 5_000_000
user_agent = "test-agent/1.0"

[daemon]
workers = 4

[[feeds]]
name = "fx-desk"
publisher = "FX Desk"
url = "https://fx.example/rss"
tags = ["fx", "markets", "fx", " markets "]

[[feeds]]
name = "fed_press"
url = "https://fed.example/press.xml"
interval = "1h30m"
timeout = "45s"
max_bytes = 1_000
user_agent = "special-agent/2.0 (ops@example.org)"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- a full valid file ----------------------------------------------------------------------


def test_full_config(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    path = write(config_dir, FULL_CONFIG)
    settings = load_settings(path)

    assert settings.source == path
    assert settings.db_path == config_dir.resolve() / "state" / "news.db"
    assert settings.busy_timeout == 30.0
    assert settings.workers == 4
    assert settings.polling == PollingSettings(
        interval=1200.0, timeout=15.0, max_bytes=5_000_000, user_agent="test-agent/1.0"
    )
    assert [f.name for f in settings.feeds] == ["fx-desk", "fed_press"]

    fx, fed = settings.feeds
    assert fx.publisher == "FX Desk"
    assert fx.url == "https://fx.example/rss"
    assert fx.tags == ("fx", "markets")
    assert fx.polling == settings.polling

    assert fed.publisher == "fed_press"  # defaults to the name
    assert fed.tags == ()
    assert fed.polling == PollingSettings(
        interval=5400.0,
        timeout=45.0,
        max_bytes=1_000,
        user_agent="special-agent/2.0 (ops@example.org)",
    )
    assert settings.feed("fed_press") is fed
    assert settings.feed("missing") is None


def test_storage_path_is_relative_to_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "conf"
    elsewhere = tmp_path / "elsewhere"
    config_dir.mkdir()
    elsewhere.mkdir()
    write(config_dir, '[storage]\npath = "db/agg.db"\n')
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("..") / "conf" / "config.toml")
    assert settings.db_path == config_dir.resolve() / "db" / "agg.db"


def test_absolute_storage_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "agg.db"
    path = write(tmp_path, f'[storage]\npath = "{target.as_posix()}"\n')
    assert load_settings(path).db_path == target


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    settings = load_settings(path)
    assert settings.polling == PollingSettings()
    assert settings.feeds == ()
    assert settings.workers == 8
    assert settings.busy_timeout == 10.0
    assert settings.db_path == tmp_path.resolve() / "data" / "aggregator.db"


def test_feed_inherits_polling_defaults_key_by_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[polling]\ninterval = "5m"\ntimeout = "7s"\n\n'
        '[[feeds]]\nname = "a"\nurl = "https://a.example/f"\ntimeout = "3s"\n',
    )
    (feed,) = load_settings(path).feeds
    assert feed.polling.interval == 300.0
    assert feed.polling.timeout == 3.0
    assert feed.polling.max_bytes == PollingSettings().max_bytes


def test_settings_from_mapping_without_a_source(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"feeds": [{"name": "a", "url": "http://a.example/f"}]}, source=None, base_dir=tmp_path
    )
    assert settings.source is None
    assert settings.feeds[0].url == "http://a.example/f"
    with pytest.raises(ConfigError, match=r"<settings>: feeds\[0\]\.name"):
        settings_from_mapping(
            {"feeds": [{"url": "http://a.example/f"}]}, source=None, base_dir=tmp_path
        )


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s", 93784.0),
        ("1.5h", 5400.0),
        (" 15m ", 900.0),
        ("15M", 900.0),
        (90, 90.0),
        (0.5, 0.5),
        (2.5, 2.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "0s",
        "0",
        "15 minutes",
        "15",
        "",
        "   ",
        "-5m",
        "5m-",
        "m",
        "1h 30m",
        "1w",
        "15mins",
        ".5h",
        "1e3s",
        True,
        False,
        0,
        -90,
        None,
        [15],
        {"m": 15},
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# TOML has `nan` and `inf` literals; an infinite interval would overflow timedelta at the
# feed's first poll, so the config must refuse it up front.
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "99999999999999d"])
def test_parse_duration_rejects_non_finite_and_absurd_values(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("literal", ["inf", "nan", "+inf"])
def test_non_finite_toml_interval_is_a_config_error(tmp_path: Path, literal: str) -> None:
    path = write(tmp_path, f"[polling]\ninterval = {literal}\n")
    with pytest.raises(ConfigError, match=r"polling\.interval"):
        load_settings(path)


# --- errors name the file and the key -------------------------------------------------------

FEED = '[[feeds]]\nname = "a"\nurl = "https://a.example/feed"\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1\n" + FEED, "bogus"),
        ("[database]\npath = 'x'\n", "database"),
        ('[polling]\nspeed = "fast"\n', "polling.speed"),
        ('[storage]\nfile = "x.db"\n', "storage.file"),
        (FEED + 'colour = "red"\n', "feeds[0].colour"),
        (FEED + '\n[[feeds]]\nname = "a"\nurl = "https://b.example/feed"\n', "feeds[1].name"),
        ('[[feeds]]\nname = "a"\nurl = "ftp://a.example/feed"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = "file:///etc/passwd"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = "https:///feed"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = "https://"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = "a.example/feed"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = "https://a.example:99999/"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\nurl = ""\n', "feeds[0].url"),
        ('[[feeds]]\nname = "a"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "Bad Name"\nurl = "https://a.example/feed"\n', "feeds[0].name"),
        ('[[feeds]]\nname = "-dash"\nurl = "https://a.example/feed"\n', "feeds[0].name"),
        ('[[feeds]]\nname = "UPPER"\nurl = "https://a.example/feed"\n', "feeds[0].name"),
        ('[[feeds]]\nname = "' + "x" * 65 + '"\nurl = "https://a.example/f"\n', "feeds[0].name"),
        ('[[feeds]]\nname = 7\nurl = "https://a.example/feed"\n', "feeds[0].name"),
        ('[[feeds]]\nurl = "https://a.example/feed"\n', "feeds[0].name"),
        ('[polling]\ninterval = "15 minutes"\n', "polling.interval"),
        ('[polling]\ninterval = "0s"\n', "polling.interval"),
        ('[polling]\ntimeout = "-5m"\n', "polling.timeout"),
        ("[polling]\ninterval = true\n", "polling.interval"),
        ('[storage]\nbusy_timeout = "soon"\n', "storage.busy_timeout"),
        (FEED + 'interval = "fast"\n', "feeds[0].interval"),
        (FEED + "max_bytes = 0\n", "feeds[0].max_bytes"),
        ('[polling]\nmax_bytes = "big"\n', "polling.max_bytes"),
        ("[polling]\nmax_bytes = -1\n", "polling.max_bytes"),
        ("[polling]\nmax_bytes = 1.5\n", "polling.max_bytes"),
        ("[polling]\nmax_bytes = true\n", "polling.max_bytes"),
        ('[polling]\nuser_agent = ""\n', "polling.user_agent"),
        ('[polling]\nuser_agent = "a\\nb"\n', "polling.user_agent"),
        (FEED + 'publisher = "  "\n', "feeds[0].publisher"),
        (FEED + 'tags = "fx"\n', "feeds[0].tags"),
        (FEED + 'tags = ["fx", ""]\n', "feeds[0].tags"),
        (FEED + "tags = [1]\n", "feeds[0].tags"),
        ("[daemon]\nworkers = 0\n", "daemon.workers"),
        ("[daemon]\nworkers = 1000\n", "daemon.workers"),
        ('[storage]\npath = ""\n', "storage.path"),
        ('polling = "15m"\n', "polling"),
        ('[feeds]\nname = "a"\n', "feeds"),
        ("feeds = [1]\n", "feeds[0]"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b'[polling\ninterval = "15m"\n', "invalid TOML"),
        (b'[[feeds]]\nname = "a"\nname = "b"\n', "invalid TOML"),
        (b'interval = "unterminated\n', "invalid TOML"),
        ('[[feeds]]\nname = "a"\npublisher = "Caf\xe9"\n'.encode("latin-1"), "not UTF-8"),
        (b"\xff\xfe[\x00p\x00]\x00", "not UTF-8"),
    ],
)
def test_unreadable_config_names_the_file(tmp_path: Path, content: bytes, phrase: str) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: ")
    assert phrase in str(info.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: config file not found")
    assert ENV_VAR in str(info.value)


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path)


def test_config_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_settings(write(tmp_path, "bogus = 1\n"))


# --- which file ------------------------------------------------------------------------------


def test_config_path_prefers_the_explicit_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "/from/env.toml")
    assert config_path("/explicit.toml") == Path("/explicit.toml")
    assert config_path(Path("rel/explicit.toml")) == Path("rel/explicit.toml")


def test_config_path_uses_the_environment_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "/from/env.toml")
    assert config_path(None) == Path("/from/env.toml")
    assert config_path("") == Path("/from/env.toml")


def test_config_path_defaults_to_config_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert config_path(None) == DEFAULT_PATH == Path("config.toml")
    monkeypatch.setenv(ENV_VAR, "")
    assert config_path(None) == Path("config.toml")


def test_load_settings_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FEED, name="from-env.toml")
    monkeypatch.setenv(ENV_VAR, str(path))
    settings = load_settings()
    assert settings.source == path
    assert [f.name for f in settings.feeds] == ["a"]


def test_load_settings_reads_config_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, FEED)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.db_path == tmp_path.resolve() / "data" / "aggregator.db"
    assert [f.name for f in settings.feeds] == ["a"]


# --- the repository's own config.toml --------------------------------------------------------


def test_repository_config_loads() -> None:
    if not REPO_CONFIG.is_file():
        pytest.skip(f"{REPO_CONFIG} does not exist yet")
    settings = load_settings(REPO_CONFIG)
    names = [feed.name for feed in settings.feeds]
    assert len(names) >= 10
    assert len(set(names)) == len(names)
    for feed in settings.feeds:
        parts = urlsplit(feed.url)
        assert parts.scheme == "https", feed.url
        assert parts.hostname, feed.url
        assert feed.publisher
        assert feed.polling.interval >= 60
    assert len({feed.url for feed in settings.feeds}) == len(names)
