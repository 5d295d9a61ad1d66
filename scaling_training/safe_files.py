"""Files of an output folder written without following links the run did not make.

An output folder (train.py's --workdir, the probes' --out) is only trusted to hold regular
files and folders. A symbolic link planted there (`.lock -> ~/.bashrc`, a dangling
`metrics.jsonl -> /etc/x`) would make a run write wherever it points, and a FIFO would make it
block forever, so such a folder is refused before anything is written (`special_entry`), and
every file a run creates is opened with O_NOFOLLOW (and O_EXCL where it is new): temporaries
get unique names from `tempfile` in the same folder and replace their target with
`os.replace`, which renames over a link instead of writing through it. The output folder
itself may be a link (the user named it); links inside it are never followed.

Imports stay light (no jax): the probes' and train.py's checks run before JAX loads.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_UMASK = os.umask(0o022)  # read once, at import (umask can only be read by setting it)
os.umask(_UMASK)


def special_entry(folder: str) -> tuple[str, str] | None:
    """(path, kind) of the first entry under `folder` that is not a regular file or a folder
    (a symbolic link, FIFO, socket or device), walked without following links; None when
    every entry is plain (or `folder` does not exist)."""
    if not os.path.isdir(folder):
        return None
    for here, dirs, files in os.walk(folder, onerror=None):
        for name in sorted(dirs + files):
            path = os.path.join(here, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:  # removed while we walked
                continue
            kind = _kind(mode)
            if kind:
                return path, kind
    return None


def _kind(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return None


def refusal(folder: str, flag: str) -> str | None:
    """The one-line reason `folder` (the value of --`flag`) cannot take a run's outputs, or
    None when it can."""
    found = special_entry(folder)
    if found is None:
        return None
    path, kind = found
    return (
        f"{path!r} is {kind}; runs write only regular files and never follow links or open "
        f"special files in their output folder: remove it, or pick another --{flag}"
    )


def open_nofollow(path: str, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses (OSError ELOOP) when `path` itself is a symbolic link."""
    return os.open(path, flags | NOFOLLOW, mode)


@contextlib.contextmanager
def temporary_beside(path: str, suffix: str = ".tmp") -> Iterator[str]:
    """A new, uniquely named empty file in `path`'s folder (created with O_EXCL by
    tempfile); yields its name and removes it unless it was renamed away."""
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder or ".")
    os.close(fd)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_atomically(path: str, data: bytes, sync: bool = False) -> None:
    """Write `data` to `path` whole or not at all: a unique temporary beside it, then
    os.replace (which replaces a link at `path` rather than writing through it)."""
    with temporary_beside(path) as tmp:
        fd = open_nofollow(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 -> what open() would have made
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if not written:  # no progress: the disk is full
                    raise OSError(28, "No space left on device")
                view = view[written:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
