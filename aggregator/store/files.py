"""Is the database file still the one this store opened, and can it still be written?

SQLite writes through the descriptors it opened, whatever happens to the path
afterwards. A deleted database swallows every later commit and vanishes when the
writer exits. A file moved over it meets the old file's `-wal` and `-shm`, and the
next process to open the path reads (and checkpoints) the old file's pages as its
own. Once the `-shm` file cannot be written (immutable, read-only mount), SQLite's
shared-memory mapping of it turns the next read or write into SIGBUS, and so does
closing the connection. A writer asks `problem()` before each transaction: one
stat and four access calls, about 11 µs (an empty commit is ~20 µs, a poll's is
milliseconds).
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileProblem:
    """Why the store must stop writing."""

    text: str
    # The path no longer names the file we hold open: what it holds is ours alone.
    orphaned: bool = False
    # The -shm mapping cannot be written: closing the connection would SIGBUS.
    shm_unwritable: bool = False


class FileGuard:
    """The database file's identity at open, checked against its path on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        db = os.path.abspath(path)
        self._db, self._wal, self._shm = db, db + "-wal", db + "-shm"
        self._dir = os.path.dirname(db)
        found = os.stat(db)
        self._identity = (found.st_dev, found.st_ino)

    def problem(self) -> FileProblem | None:
        try:
            found = os.stat(self._db)
        except (FileNotFoundError, NotADirectoryError):
            return FileProblem(
                f"database {self.path} was deleted while this process had it open",
                orphaned=True,
            )
        except OSError as e:
            return FileProblem(f"database {self.path} cannot be checked: {e.strerror}")
        if (found.st_dev, found.st_ino) != self._identity:
            return FileProblem(
                f"database {self.path} was replaced by another file while this process had it open",
                orphaned=True,
            )
        # The -shm first: it is the one whose loss is a crash rather than an error.
        for path in (self._shm, self._wal, self._db, self._dir):
            if os.access(path, os.W_OK):
                continue
            reason = _why_unwritable(path)
            if reason is None:
                continue
            return FileProblem(
                f"cannot write to database {self.path}: {path} is read-only ({reason})",
                shm_unwritable=path == self._shm,
            )
        return None


def _why_unwritable(path: str) -> str | None:
    """The error a write to `path` gets, or None when it turns out writable after all.

    Only runs once access() said no, so it may be slow. A missing -wal or -shm is
    fine: SQLite creates them when it needs them.
    """
    try:
        if os.path.isdir(path):
            handle, probe = tempfile.mkstemp(dir=path, prefix=".aggregator-probe-")
            os.close(handle)
            os.unlink(probe)
        else:
            os.close(os.open(path, os.O_WRONLY))
    except FileNotFoundError:
        return None
    except OSError as e:
        text = e.strerror or str(e)
        if e.errno == errno.EPERM:
            # Mode bits give EACCES; EPERM on a write is the immutable attribute.
            text += "; immutable? see lsattr"
        return text
    return None
