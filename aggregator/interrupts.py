"""Ctrl-C held back over the few steps that must not be cut in the middle."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Ctrl-C held back until the end of the block, then answered as usual.

    For starting worker processes and loading extension modules. A Ctrl-C that
    arrives then would otherwise be lost in a fork handler (Python only prints it,
    and the command runs on), print a traceback from a worker that has not yet come
    to ignore it, or turn into "ImportError: initialization failed" in the middle
    of loading a C extension.

    Two holds, because a signal for the process may be taken by any thread that
    does not block it (numpy's BLAS threads, say) and Python then runs its handler
    on the main thread: the handler only notes it, and this thread blocks it, as do
    processes started from here until they unblock it themselves.
    """
    noted: list[int] = []
    swapped = threading.current_thread() is threading.main_thread()
    previous: Callable[[int, FrameType | None], Any] | int | None = None
    if swapped:

        def note(signum: int, frame: FrameType | None) -> None:
            noted.append(signum)

        previous = signal.signal(signal.SIGINT, note)
    blocks = hasattr(signal, "pthread_sigmask")  # POSIX only
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocks else set()
    try:
        yield
    finally:
        if blocks:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if swapped:
            signal.signal(signal.SIGINT, previous)
            if noted:
                if callable(previous):
                    previous(signal.SIGINT, None)
                elif previous == signal.SIG_DFL:
                    signal.raise_signal(signal.SIGINT)


def ignore_sigint() -> None:
    """For a process started inside sigint_held(): ignore Ctrl-C from now on.

    Ignored first, then let through: one that arrived during the start is dropped.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
