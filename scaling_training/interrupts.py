"""Ctrl-C (SIGINT) and SIGTERM end a run cleanly: one line, status 130 / 143, and a workdir
a rerun resumes from.

While `delivered()` is active the two signals raise `Interrupted` in the main thread, except
inside `deferred()` sections (a checkpoint being saved, earlier outputs being archived),
which finish first: the signal is raised as they end. Every other write of a run is a single
write() or an atomic rename, so the workdir is always one a rerun can read.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from scaling_training.errors import EXIT_INTERRUPTED


class Interrupted(BaseException):  # noqa: N818 (not an error: the user asked to stop)
    """The run was asked to stop by `signum`."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.status = EXIT_INTERRUPTED.get(signum, 128 + signum)


_state = {"depth": 0, "pending": None}


def _handler(signum, _frame) -> None:
    if _state["depth"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def delivered() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_INTERRUPTED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state["pending"] = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section a signal does not cut: one arriving inside is raised when it ends."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if not _state["depth"] and _state["pending"] is not None:
        signum, _state["pending"] = _state["pending"], None
        raise Interrupted(signum)


def rerun_advice(config) -> str:
    """What rerunning the same command does with what the run left in its workdir."""
    from scaling_training.config import sweep_lrs

    if sweep_lrs(config):
        return "sweeps save no checkpoints: rerun the same command to start again from step 0"
    if not config.checkpoint_every:
        return (
            "no checkpoints were saved (--checkpoint_every=0): rerun the same command to start "
            "again from step 0"
        )
    return (
        f"rerun the same command to resume from the newest checkpoint in "
        f"{config.workdir_path}/checkpoints (from step 0 if none was saved yet)"
    )
