"""What a run leaves in its workdir, and the progress lines it prints."""

from __future__ import annotations

import json
import math
import os
import shutil

OUTPUT_FILES = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    # training/ scale outputs (checkpoints, plots, sweeps, TensorBoard events)
    "checkpoints",
    "metrics.png",
    "sweep.json",
    "sweep.png",
    "tensorboard",
)


def archive_previous_run(workdir: str) -> str | None:
    """Move an earlier run's outputs to workdir/archive/<n>/ so nothing is overwritten."""
    present = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(workdir, f))]
    if not present:
        return None
    archive_root = os.path.join(workdir, "archive")
    n = 1
    while os.path.exists(os.path.join(archive_root, str(n))):
        n += 1
    target = os.path.join(archive_root, str(n))
    os.makedirs(target)
    for name in present:
        shutil.move(os.path.join(workdir, name), os.path.join(target, name))
    return target


def write_json(path: str, obj) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN/inf: non-finite numbers are written as null."""
    value = float(value)
    return value if math.isfinite(value) else None


class MetricsLog:
    """metrics.jsonl: one JSON object a line, flushed as written."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "a")  # noqa: SIM115 (kept open for the run; closed by close())

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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
