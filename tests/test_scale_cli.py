"""The scale flags as a user meets them: one-line errors, plots, TensorBoard events."""

import dataclasses
import os
import subprocess
import sys

import pytest

from scaling_training.config import TrainConfig
from scaling_training.loop import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "args, start",
    [
        (["--mesh=batch:2"], "error: --mesh: unknown axis 'batch'"),
        (["--lrs=1e-3,fast"], "error: --lrs: expected numbers"),
        (["--seeds=3"], "error: --seeds: only sweeps"),
        (["--lrs=0.1,0.2", "--mesh=members:3"], "error: --mesh: the sweep's 2 runs"),
        (["--mesh=members:1"], "error: --mesh: the members axis is for sweeps"),
        (["--num_processes=2"], "error: --coordinator_address:"),
        (["--dataset=cifar10", "--data_dir={tmp}"], "error: --data_dir: cifar10 is not prepared"),
    ],
)
def test_bad_scale_flags_are_one_line_and_status_2(args, start, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path / "tfds")) for a in args]
    proc = subprocess.run(
        [sys.executable, "train.py", *args, f"--workdir={tmp_path / 'w'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.stdout[-1000:], proc.stderr[-1000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr
    assert not (tmp_path / "w" / "metrics.jsonl").exists()
    if "data_dir" in start:
        assert "tfds build cifar10" in lines[0]


def test_progress_bar_plot_and_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboardX")
    lines = []
    config = TrainConfig(
        width=16, base_width=16, depth=1, steps=6, eval_every=3, log_every=3, batch_size=16,
        dataset="teacher", checkpoint_every=0, tensorboard=True, workdir=str(tmp_path),
    )  # fmt: skip
    train(dataclasses.replace(config), echo=lines.append)
    bars = [line for line in lines if line.startswith("[")]
    assert bars[0].startswith("[##########----------]  50% step 3/6") and "eta" in bars[0]
    assert bars[-1].startswith("[####################] 100% step 6/6")
    assert (tmp_path / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    events = os.listdir(tmp_path / "tensorboard")
    assert any(name.startswith("events.out.tfevents") for name in events)
    assert sum(os.path.getsize(tmp_path / "tensorboard" / n) for n in events) > 200
