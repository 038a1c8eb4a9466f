"""`aggregator demo`: the bundled sample feeds, served on loopback and polled for real.

The feeds go through the same fetch -> parse -> store path as any other feed;
only the server is ours. The demo database is rebuilt on every run.
"""

from __future__ import annotations

import functools
import os
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aggregator.config import settings_from_mapping
from aggregator.errors import ConfigError, StorageError
from aggregator.models import PollReport, StoredItem
from aggregator.pipeline import Clock, poll, utc_now
from aggregator.store import Store

DEFAULT_DEMO_DB = Path("data/demo.db")


def find_demo_dir() -> Path:
    """data/demo under the current directory, else next to the installed package."""
    for candidate in (
        Path("data/demo"),
        Path(__file__).resolve().parent.parent / "data" / "demo",
    ):
        if (candidate / "feeds.toml").is_file():
            return candidate
    raise ConfigError(
        "data/demo/feeds.toml not found (run from the project folder or pass --demo-dir)"
    )


@dataclass(frozen=True, slots=True)
class DemoResult:
    db_path: Path
    first_poll: tuple[PollReport, ...]
    second_poll: tuple[PollReport, ...]
    items: tuple[StoredItem, ...]
    # Stories with at least one copy, each oldest item first.
    chains: tuple[tuple[StoredItem, ...], ...]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        if str(path).endswith(".xml"):
            return "application/xml"
        return super().guess_type(path)


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 on a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _demo_document(demo_dir: Path, base_url: str, db_path: Path) -> dict[str, Any]:
    listing = demo_dir / "feeds.toml"
    try:
        data = tomllib.loads(listing.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{listing}: cannot read demo feed list: {e}") from e
    feeds = []
    for index, feed in enumerate(data.get("feeds", [])):
        feed = dict(feed)
        file_name = feed.pop("file", None)
        if not isinstance(file_name, str) or not (demo_dir / file_name).is_file():
            raise ConfigError(f"{listing}: feeds[{index}].file: {file_name!r} is not a file there")
        feeds.append({**feed, "url": f"{base_url}/{file_name}"})
    return {"storage": {"path": str(db_path)}, "feeds": feeds}


def run_demo(demo_dir: Path, db_path: Path = DEFAULT_DEMO_DB, clock: Clock = utc_now) -> DemoResult:
    """Poll the sample feeds twice (the second time answers 304) into a fresh database."""
    for suffix in ("", "-wal", "-shm"):
        stale = db_path.with_name(db_path.name + suffix)
        try:
            stale.unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot replace demo database {stale}: {e.strerror}") from e
    with serve_directory(demo_dir) as base_url:
        settings = settings_from_mapping(
            _demo_document(demo_dir, base_url, db_path),
            source=demo_dir / "feeds.toml",
            base_dir=Path.cwd(),
        )
        with Store.open(settings.db_path) as store:
            first = tuple(poll(store, settings, everything=True, clock=clock))
            second = tuple(poll(store, settings, everything=True, clock=clock))
            items = tuple(store.items(limit=None))
            chains = tuple(
                tuple(store.story(story.original.id))
                for story in store.stories(min_copies=1, limit=None)
            )
    return DemoResult(settings.db_path, first, second, items, chains)
