"""What a run leaves in its workdir, and the progress lines it prints."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil

from scaling_training import safe_files

OUTPUT_FILES = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    # scaling_training/ scale outputs (checkpoints, plots, sweeps, TensorBoard events)
    "checkpoints",
    "metrics.png",
    "sweep.json",
    "sweep.png",
    "tensorboard",
)


def archive_previous_run(workdir: str) -> str | None:
    """Move an earlier run's outputs to workdir/archive/<n>/ so nothing is overwritten.
    ConfigError, with nothing moved, when one of those names holds something that is not
    an output of ours (a user's own config.json): we archive only what we wrote."""
    present = [f for f in OUTPUT_FILES if os.path.lexists(os.path.join(workdir, f))]
    if not present:
        return None
    for name in present:
        if not is_ours(os.path.join(workdir, name)):
            from scaling_training.errors import ConfigError

            raise ConfigError(
                "workdir",
                f"{os.path.join(workdir, name)!r} is not an output of train.py, so it is not "
                "archived; move it away, or pick another --workdir",
            )
    archive_root = os.path.join(workdir, "archive")
    n = 1
    while os.path.exists(os.path.join(archive_root, str(n))):
        n += 1
    target = os.path.join(archive_root, str(n))
    from scaling_training.interrupts import deferred

    with deferred():  # Ctrl-C never leaves an earlier run half archived
        os.makedirs(target)
        for name in present:
            shutil.move(os.path.join(workdir, name), os.path.join(target, name))
    return target


def _head(path: str, limit: int) -> bytes:
    with os.fdopen(safe_files.open_nofollow(path, os.O_RDONLY), "rb") as f:
        return f.read(limit)


def is_record(record) -> bool:
    """Whether a parsed metrics.jsonl line is one of ours: an object with an integer step
    >= 1 and numbers, booleans or nulls for values."""
    return (
        isinstance(record, dict)
        and type(record.get("step")) is int
        and record["step"] >= 1
        and all(v is None or type(v) in (int, float, bool) for v in record.values())
    )


def is_ours(path: str) -> bool:
    """Whether `path` (one of OUTPUT_FILES) looks like what a run writes there: the JSON of
    config.json, summary.json and sweep.json, metrics records, PNG plots, folders."""
    name = os.path.basename(path)
    if name in ("checkpoints", "tensorboard"):
        return os.path.isdir(path) and not os.path.islink(path)
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        if name.endswith(".png"):
            return _head(path, 8) == b"\x89PNG\r\n\x1a\n"
        if name == "metrics.jsonl":
            first = _head(path, 1 << 16).split(b"\n", 1)[0]
            return not first.strip() or is_record(json.loads(first))
        record = json.loads(_head(path, 1 << 26))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    if name == "config.json":
        return isinstance(record.get("model"), str) and isinstance(record.get("rule"), str)
    if name == "summary.json":
        return "steps_done" in record
    return True  # sweep.json


class WriteError(OSError):
    """An output file could not be written; what was written before is intact."""

    def __init__(self, path: str, error: BaseException):
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:160]
        super().__init__(f"cannot write {path} ({reason or type(error).__name__})")
        self.path = path


def write_json(path: str, obj) -> None:
    """Write JSON atomically (a uniquely named temporary + rename, never through a link), so
    a crash never leaves half a file."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    try:
        safe_files.write_atomically(path, text.encode())
    except OSError as e:
        raise WriteError(path, e) from None


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN/inf: non-finite numbers are written as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def drop_torn_tail(path: str) -> int:
    """Cut a last line without its newline (a write cut short by a kill or a full disk) off
    `path`; the number of bytes dropped."""
    try:
        fd = safe_files.open_nofollow(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    with os.fdopen(fd, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        keep = size
        while keep > 0:
            start = max(0, keep - 4096)
            f.seek(start)
            block = f.read(keep - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        if keep == size:
            return 0
        f.truncate(keep)
        return size - keep


class MetricsLog:
    """metrics.jsonl: one JSON object a line, each line one write() that either lands whole
    or is cut back off, so the file only ever holds whole lines. A torn tail left by a killed
    run is dropped on opening; `sync()` makes the lines durable (at chunk ends)."""

    def __init__(self, path: str):
        self.path = path
        try:
            drop_torn_tail(path)
            self._fd = safe_files.open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as e:
            raise WriteError(path, e) from None

    def write(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            if written != len(line):  # a short write: the disk filled up part way
                raise OSError(28, "No space left on device (short write)")
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise WriteError(self.path, e) from None

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise WriteError(self.path, e) from None

    def close(self) -> None:
        os.close(self._fd)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(
    step: int,
    steps: int,
    loss: float,
    accuracy: float,
    steps_per_s: float,
    eta_s: float,
    test: dict | None = None,
) -> str:
    width = len(str(steps))
    line = (
        f"step {step:>{width}}/{steps} | loss {loss:.4f} | acc {accuracy:.3f} | "
        f"{steps_per_s:,.0f} steps/s | eta {format_duration(eta_s)}"
    )
    if test:
        line += f" | test loss {test['test_loss']:.4f} acc {test['test_accuracy']:.3f}"
        if "test_bits_per_byte" in test:
            line += f" bpb {test['test_bits_per_byte']:.3f}"
    return line
