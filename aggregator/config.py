"""config.toml -> one validated Settings object.

Every problem is a ConfigError whose message names the file and the key, so the
CLI can print it as a single line.

Credentials: a feed's `url` may hold `user:password@`, or the feed gives `username`
with `password` or `password_env` (the name of an environment variable). Either way
FeedConfig.url is the URL without them, and with secret query values as "***"
(aggregator.text.urls.redact_url): that is what reaches the database and every
output. What the fetch needs goes in FeedConfig.credentials. A password written in
the file itself draws a warning when the file is readable by other users.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import ConfigError
from aggregator.models import (
    VERDICTS,
    DaemonSettings,
    DedupSettings,
    FeedConfig,
    FeedCredentials,
    PollingSettings,
    Settings,
)
from aggregator.text.urls import origin, redact_url, secret_query_values, split_userinfo

log = logging.getLogger(__name__)

ENV_VAR = "AGGREGATOR_CONFIG"
DEFAULT_PATH = Path("config.toml")

MAX_DURATION = 3650 * 86400.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TOP_KEYS = {"storage", "polling", "daemon", "dedup", "feeds"}
_STORAGE_KEYS = {"path", "busy_timeout"}
_POLLING_KEYS = {"interval", "timeout", "max_bytes", "user_agent"}
_DAEMON_KEYS = {
    "workers",
    "per_host",
    "tick",
    "shutdown_timeout",
    "backoff_cap",
    "respect_server_hints",
    "metrics_port",
    "processes",
}
_CREDENTIAL_KEYS = ("username", "password", "password_env")
_FEED_KEYS = {"name", "publisher", "url", "tags", "syndicates", *_CREDENTIAL_KEYS} | _POLLING_KEYS
_DEDUP_FIELDS = {f.name: f for f in fields(DedupSettings)}


def parse_duration(value: object) -> float:
    """'15m', '1h30m', '20s', '2d' or a number of seconds -> seconds.

    Raises ValueError with a reason; callers add the key and file.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 15m, 1h30m, 2d)")
    else:
        raise ValueError(f"{value!r} is not a duration")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    if seconds > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than the 10-year maximum")
    return seconds


def check_feed_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a URL")
    url = value.strip()
    # A URL with an "@" may hold a password, and one that does not parse cannot be
    # redacted for sure (nor can urllib's reason, which quotes it): the message then
    # names only the key.
    shown = "the URL" if "@" in url else repr(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        reason = "" if "@" in url else f" ({e})"
        raise ValueError(f"{shown} is not a valid URL{reason}") from e
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{shown} is not an http(s) URL")
    if not parts.hostname:
        raise ValueError(f"{shown} has no host")
    return url


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The file to read: --config, else $AGGREGATOR_CONFIG, else ./config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_PATH


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    source = config_path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(
            f"{source}: config file not found (pass --config PATH or set {ENV_VAR})"
        ) from e
    except OSError as e:
        raise ConfigError(f"{source}: cannot read config file: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: config file is not UTF-8 text") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from e
    return settings_from_mapping(data, source=source, base_dir=source.resolve().parent)


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    source: Path | None,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate an already-decoded TOML document. Relative paths are taken from base_dir.

    `environ` (default: the process's) is where `password_env` variables are looked up.
    """
    where = str(source) if source is not None else "<settings>"
    environ = os.environ if environ is None else environ

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {reason}")

    def table(value: object, key: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise fail(key, "must be a table")
        for unknown in sorted(set(value) - allowed):
            prefix = f"{key}." if key else ""
            raise fail(f"{prefix}{unknown}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    root = table(data, "", _TOP_KEYS)

    storage = table(root.get("storage", {}), "storage", _STORAGE_KEYS)
    db_value = storage.get("path", "data/aggregator.db")
    if not isinstance(db_value, str) or not db_value.strip():
        raise fail("storage.path", "must be a non-empty string")
    db_path = Path(db_value).expanduser()
    if not db_path.is_absolute():
        db_path = base_dir / db_path
    busy_timeout = 10.0
    if "busy_timeout" in storage:
        try:
            busy_timeout = parse_duration(storage["busy_timeout"])
        except ValueError as e:
            raise fail("storage.busy_timeout", str(e)) from e

    def polling_from(values: Mapping[str, Any], base: PollingSettings, key: str) -> PollingSettings:
        result = base
        if "interval" in values:
            try:
                result = replace(result, interval=parse_duration(values["interval"]))
            except ValueError as e:
                raise fail(f"{key}.interval", str(e)) from e
        if "timeout" in values:
            try:
                result = replace(result, timeout=parse_duration(values["timeout"]))
            except ValueError as e:
                raise fail(f"{key}.timeout", str(e)) from e
        if "max_bytes" in values:
            cap = values["max_bytes"]
            if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
                raise fail(f"{key}.max_bytes", f"{cap!r} must be a positive whole number of bytes")
            result = replace(result, max_bytes=cap)
        if "user_agent" in values:
            agent = values["user_agent"]
            if not isinstance(agent, str) or not agent.strip() or "\n" in agent:
                raise fail(f"{key}.user_agent", "must be a non-empty single-line string")
            result = replace(result, user_agent=agent.strip())
        return result

    polling = polling_from(
        table(root.get("polling", {}), "polling", _POLLING_KEYS), PollingSettings(), "polling"
    )

    daemon = table(root.get("daemon", {}), "daemon", _DAEMON_KEYS)
    workers = daemon.get("workers", 8)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise fail("daemon.workers", f"{workers!r} must be a whole number from 1 to 256")

    dedup = _dedup_settings(table(root.get("dedup", {}), "dedup", set(_DEDUP_FIELDS)), fail)
    daemon_settings = _daemon_settings(daemon, fail)

    feeds_value = root.get("feeds", [])
    if not isinstance(feeds_value, list):
        raise fail("feeds", "must be an array of tables ([[feeds]])")
    feeds: list[FeedConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(feeds_value):
        key = f"feeds[{index}]"
        values = table(entry, key, _FEED_KEYS)
        name = values.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise fail(
                f"{key}.name",
                f"{name!r} must be a slug: lower-case letters, digits, '-' or '_' (max 64)",
            )
        if name in seen:
            raise fail(f"{key}.name", f"duplicate feed name {name!r} (also feeds[{seen[name]}])")
        seen[name] = index
        try:
            url = check_feed_url(values.get("url"))
        except ValueError as e:
            raise fail(f"{key}.url", str(e)) from e
        url, credentials = _feed_credentials(url, values, key, fail, environ)
        if credentials is not None and credentials.password and _password_in_file(values):
            _warn_if_readable(source, key)
        publisher = values.get("publisher", name)
        if not isinstance(publisher, str) or not publisher.strip():
            raise fail(f"{key}.publisher", "must be a non-empty string")
        tags = _string_list(values, "tags", key, fail)
        syndicates = _string_list(values, "syndicates", key, fail)
        feeds.append(
            FeedConfig(
                name=name,
                publisher=publisher.strip(),
                url=url,
                tags=tags,
                polling=polling_from(values, polling, key),
                syndicates=syndicates,
                credentials=credentials,
            )
        )

    return Settings(
        source=source,
        db_path=db_path,
        busy_timeout=busy_timeout,
        polling=polling,
        feeds=tuple(feeds),
        workers=workers,
        dedup=dedup,
        daemon=daemon_settings,
    )


def _feed_credentials(
    url: str,
    values: Mapping[str, Any],
    key: str,
    fail: Callable[[str, str], ConfigError],
    environ: Mapping[str, str],
) -> tuple[str, FeedCredentials | None]:
    """(the URL as stored and shown, what fetching it takes) for one [[feeds]] table."""
    bare, username, password = split_userinfo(url)
    given = [name for name in _CREDENTIAL_KEYS if name in values]
    if username is not None and given:
        raise fail(
            f"{key}.{given[0]}",
            "the url holds user:password@ already; give the credentials one way, not both",
        )
    missing: str | None = None
    if "username" in values:
        username = values["username"]
        if not isinstance(username, str) or not username or ":" in username or "\n" in username:
            raise fail(f"{key}.username", "must be a non-empty single-line string without ':'")
    if "password" in values and "password_env" in values:
        raise fail(f"{key}.password", "give password or password_env, not both")
    if username is None and given:
        raise fail(f"{key}.{given[0]}", "a password needs a username")
    if "password" in values:
        password = values["password"]
        if not isinstance(password, str) or not password:
            raise fail(f"{key}.password", "must be a non-empty string")
    if "password_env" in values:
        variable = values["password_env"]
        if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
            raise fail(f"{key}.password_env", "must be the name of an environment variable")
        password = environ.get(variable) or None
        if password is None:
            # Not a config error: commands that fetch nothing (feeds, export) still work.
            # Each fetch of the feed is refused with this, and shows as the feed's error.
            missing = f"environment variable {variable} ({key}.password_env) is not set"
    query = secret_query_values(bare)
    shown = redact_url(bare)
    where = origin(bare)
    if (username is None and not query) or where is None:
        return shown, None
    if username is not None and password is None and missing is None:
        password = ""  # a user name alone (a token) is sent with an empty password
    return shown, FeedCredentials(
        origin=where, username=username, password=password, query=query, missing=missing
    )


def _password_in_file(values: Mapping[str, Any]) -> bool:
    return "password" in values or split_userinfo(str(values.get("url", "")))[2] is not None


def _warn_if_readable(source: Path | None, key: str) -> None:
    """A password written in the config is a secret in a file: say so if others can read it."""
    if source is None:
        return
    try:
        mode = source.stat().st_mode
    except OSError:
        return
    if mode & 0o044:
        log.warning(
            "%s: %s: this file holds a password and other users can read it "
            "(mode %o): chmod 600 it, or name an environment variable with password_env",
            source,
            key,
            mode & 0o777,
        )


def _daemon_settings(
    values: Mapping[str, Any], fail: Callable[[str, str], ConfigError]
) -> DaemonSettings:
    overrides: dict[str, Any] = {}
    for name in ("tick", "shutdown_timeout", "backoff_cap"):
        if name in values:
            try:
                overrides[name] = parse_duration(values[name])
            except ValueError as e:
                raise fail(f"daemon.{name}", str(e)) from e
    if "per_host" in values:
        per_host = values["per_host"]
        if isinstance(per_host, bool) or not isinstance(per_host, int) or not 1 <= per_host <= 64:
            raise fail("daemon.per_host", f"{per_host!r} must be a whole number from 1 to 64")
        overrides["per_host"] = per_host
    if "respect_server_hints" in values:
        if not isinstance(values["respect_server_hints"], bool):
            raise fail("daemon.respect_server_hints", "must be true or false")
        overrides["respect_server_hints"] = values["respect_server_hints"]
    if "metrics_port" in values:
        port = values["metrics_port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise fail(
                "daemon.metrics_port", f"{port!r} must be a port number (0 picks a free one)"
            )
        overrides["metrics_port"] = port
    if "processes" in values:
        processes = values["processes"]
        if (
            isinstance(processes, bool)
            or not isinstance(processes, int)
            or not 0 <= processes <= 64
        ):
            raise fail(
                "daemon.processes",
                f"{processes!r} must be a whole number from 0 (one per core) to 64",
            )
        overrides["processes"] = processes
    return replace(DaemonSettings(), **overrides)


def _string_list(
    values: Mapping[str, Any], name: str, key: str, fail: Callable[[str, str], ConfigError]
) -> tuple[str, ...]:
    items = values.get(name, [])
    if not isinstance(items, list) or not all(isinstance(t, str) and t.strip() for t in items):
        raise fail(f"{key}.{name}", "must be a list of non-empty strings")
    return tuple(dict.fromkeys(t.strip() for t in items))


def _dedup_settings(
    values: Mapping[str, Any], fail: Callable[[str, str], ConfigError]
) -> DedupSettings:
    defaults = DedupSettings()
    overrides: dict[str, Any] = {}
    for name, value in values.items():
        key = f"dedup.{name}"
        default = getattr(defaults, name)
        if name == "verdict":
            if value not in VERDICTS:
                raise fail(key, f"{value!r} must be one of {', '.join(map(repr, VERDICTS))}")
            overrides[name] = value
        elif name == "window":
            try:
                overrides[name] = parse_duration(value)
            except ValueError as e:
                raise fail(key, str(e)) from e
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(key, f"{value!r} must be a positive whole number")
            overrides[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise fail(key, f"{value!r} must be a number from 0 to 1")
            overrides[name] = float(value)
    return replace(defaults, **overrides)
