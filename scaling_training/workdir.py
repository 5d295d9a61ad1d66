"""One run per workdir: a lock naming its holder, taken over when the holder died.

The lock is `workdir/.lock`, held with `fcntl.flock` for the life of the run and holding
`pid host` as text. The kernel drops a flock when its process dies (kill -9 included), so a
lock file nobody holds is stale and is taken over. A run that fails leaves the workdir as it
found it: the lock file is removed (or a dead run's stale one restored, bytes and times), and
a workdir the run created is removed when empty. A workdir holding a symbolic link or a
special file anywhere is refused before the lock is taken (scaling_training/safe_files.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator

from scaling_training import safe_files
from scaling_training.errors import ConfigError

LOCK_NAME = ".lock"


def _holder(path: str) -> str:
    try:
        with os.fdopen(safe_files.open_nofollow(path, os.O_RDONLY)) as f:
            pid, _, host = f.read().strip().partition(" ")
    except OSError:
        return "another run"
    return f"pid {pid} on {host}" if pid else "another run"


def _make_dir(path: str) -> list[str]:
    """Create `path` and missing parents; the folders created, deepest first."""
    created = []
    head = os.path.abspath(path)
    while not os.path.isdir(head):
        created.append(head)
        head = os.path.dirname(head)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            "workdir", f"cannot write to {path!r} ({e.strerror or e}); pick another"
        ) from None
    return created


def _acquire(path: str) -> tuple[int, bytes, os.stat_result]:
    """An fd holding the flock of `path`, the bytes a dead holder left there (b"" for a new
    lock file) and the file's stat before we wrote to it."""
    while True:
        try:
            fd = safe_files.open_nofollow(path, os.O_RDWR | os.O_CREAT)
        except OSError as e:
            raise ConfigError(
                "workdir", f"cannot write to {os.path.dirname(path)!r} ({e.strerror or e})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                "workdir",
                f"{os.path.dirname(path)!r} is in use by {_holder(path)} (lock {path}); "
                "wait for it to finish or use another --workdir",
            ) from None
        # The previous holder may have removed the file between our open and flock: then we
        # locked an orphan inode, and must lock the file that is there now.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    before = os.fstat(fd)
    stale = os.read(fd, 4096)
    _rewrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return fd, stale, before


def _rewrite(fd: int, content: bytes) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, content)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True) -> Iterator[str | None]:
    """Create `workdir`, prove it writable and lock it for this run; yield the pid and host of
    a dead run whose stale lock was taken over (None usually). ConfigError when another live
    run holds it. On leaving, the lock file goes; when the run failed, a workdir this call
    created goes too if it is empty, so a failed run changes nothing."""
    if not enabled:  # processes other than the first write nothing
        yield None
        return
    refused = safe_files.refusal(workdir, "workdir")
    if refused:
        raise ConfigError("workdir", refused)
    created = _make_dir(workdir)
    path = os.path.join(workdir, LOCK_NAME)
    try:
        fd, stale, before = _acquire(path)
    except BaseException:
        _remove_empty(created)
        raise
    failed = True
    try:
        yield stale.decode(errors="replace").strip() or None
        failed = False
    finally:
        with contextlib.suppress(OSError):
            if failed and stale:  # leave a dead run's lock file exactly as it was
                _rewrite(fd, stale)
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            else:
                os.remove(path)
        os.close(fd)  # releases the flock
        if failed:
            _remove_empty(created)


def _remove_empty(folders: list[str]) -> None:
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or gone): keep it
            return
