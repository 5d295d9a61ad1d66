"""Error text that stays on one line: a user's value or an exception's message may hold
newlines, and a CLI's error is one line on stderr."""

from __future__ import annotations

import os
import sys
import traceback


def escaped(text: str) -> str:
    """`text` with line breaks written as \\n (and \\r), so it prints as one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def one_line(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message` (the type alone when the message is empty)."""
    text = str(error).strip()
    first = text.splitlines()[0][:limit] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _ours(filename: str) -> bool:
    """Whether a frame's file is this project's or Python's (not a user's)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.abspath(filename)
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    if filename.startswith("<") or any(path.startswith(p + os.sep) for p in prefixes):
        return True
    inside = os.path.relpath(path, root)
    return not inside.startswith("..") and inside.split(os.sep)[0] in (
        "rules", "zoo", "scaling", "scaling_training", "scaling_data", "train.py",
    )  # fmt: skip


def user_frame(error: BaseException) -> str | None:
    """`file:line` of the innermost frame of `error`'s traceback in a user's file (not this
    project's, not Python's), or None."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if not _ours(frame.filename):
            return f"{frame.filename}:{frame.lineno}"
    return None


def user_error(error: BaseException) -> str:
    """`Type: message (at file:line)` for an exception raised by a user's code."""
    where = user_frame(error)
    return one_line(error) + (f" (at {where})" if where else "")


def backend_error(error: BaseException) -> str:
    """The line for JAX failing to start the backend that JAX_PLATFORMS names."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    reason = str(error).split(" (set JAX_PLATFORMS=")[0].strip().splitlines()[0]
    return (
        f"JAX_PLATFORMS={platforms!r}: {reason}; unset JAX_PLATFORMS (or name an installed "
        "backend, e.g. cpu)"
    )
