"""An exclusive lock next to the database, so two pollers never work one database.

`flock` on `<db>.lock`: the kernel drops it when the holder dies, even by
SIGKILL, so a crashed daemon never leaves a stale lock behind. The file keeps
who holds it (pid, host, role, since) for the error message of the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from aggregator.errors import AggregatorError


class AlreadyRunningError(AggregatorError):
    """Another aggregator process is polling the same database."""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class DatabaseLock:
    def __init__(self, db_path: Path, role: str) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self.role = role
        self._file: IO[str] | None = None

    def acquire(self) -> DatabaseLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(self.path)
            handle.close()
            raise AlreadyRunningError(
                f"database {self.db_path} is already being polled by {holder}; "
                "stop it first (or use its database read-only: items, feeds, status)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "role": self.role,
                    "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
        )
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> DatabaseLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder(db_path: Path) -> dict[str, object] | None:
    """Who holds the lock now, or None when nobody does."""
    path = lock_path(db_path)
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path) or {"pid": None}
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(path: Path) -> str:
    info = _read(path)
    if not info:
        return "another process"
    return (
        f"aggregator {info.get('role', '?')} (pid {info.get('pid', '?')} on "
        f"{info.get('host', '?')}, since {info.get('since', '?')})"
    )
