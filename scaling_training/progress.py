"""What a person watches: a progress bar with ETA, TensorBoard events, a plot at the end.

matplotlib and tensorboardX are imported only in the functions that use them.
"""

from __future__ import annotations

import contextlib
import json
import os

from scaling_training import outputs, safe_files


def bar(step: int, steps: int, width: int = 20) -> str:
    """`[########------------]  40%`"""
    filled = int(width * step / steps) if steps else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {100 * step // max(steps, 1):3d}%"


def progress_line(step: int, steps: int, *args, **kwargs) -> str:
    """outputs.progress_line (step, loss, accuracy, steps/s, ETA) behind a bar."""
    return f"{bar(step, steps)} {outputs.progress_line(step, steps, *args, **kwargs)}"


class TensorBoard:
    """Scalars of every metrics record as TensorBoard events in workdir/tensorboard/."""

    def __init__(self, workdir: str, purge_step: int | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            from scaling_training.errors import ConfigError

            raise ConfigError(
                "tensorboard", "needs tensorboardX: pip install 'scaling-rules[tensorboard]'"
            ) from None
        self.path = os.path.join(workdir, "tensorboard")
        # purge_step drops events past a resumed checkpoint, as metrics.jsonl is truncated
        with self._io():
            self._writer = SummaryWriter(self.path, purge_step=purge_step)

    @contextlib.contextmanager
    def _io(self):
        """An I/O failure of the event files is a WriteError (status 4), like every output's."""
        try:
            yield
        except OSError as e:
            raise outputs.WriteError(self.path, e) from None

    def write(self, record: dict) -> None:
        scalars = {
            key: value
            for key, value in record.items()
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        with self._io():
            for key, value in scalars.items():
                self._writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        with self._io():
            self._writer.close()


def read_metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_metrics(metrics_path: str, png_path: str) -> None:
    """Train/test loss and accuracy against step, written to `png_path` (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("test", "o-")):
        rows = [r for r in records if r.get(f"{split}_loss") is not None]
        steps = [r["step"] for r in rows]
        ax_loss.plot(steps, [r[f"{split}_loss"] for r in rows], style, label=split, ms=3)
        ax_acc.plot(steps, [r[f"{split}_accuracy"] for r in rows], style, label=split, ms=3)
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with safe_files.temporary_beside(png_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, png_path)


def truncate_metrics(path: str, last_step: int) -> int:
    """Keep the records of steps <= last_step (a resumed run rewrites the rest), atomically.
    metrics.jsonl is read back as untrusted input: a line that is not one of our records
    (garbled, hand-edited, a string where a number belongs) is dropped; returns how many."""
    try:
        fd = safe_files.open_nofollow(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    kept, dropped = [], 0
    with os.fdopen(fd, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):  # a tail cut short by a kill: not a foreign line
                continue
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a kill, or not text at all
                record = None
            if not outputs.is_record(record):
                dropped += bool(line.strip())
            elif record["step"] <= last_step:
                kept.append(json.dumps(record, sort_keys=True) + "\n")
    safe_files.write_atomically(path, "".join(kept).encode())
    return dropped
