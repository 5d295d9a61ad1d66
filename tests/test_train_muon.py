"""train.py with --optimizer=muon: a sweep member is its run, and a killed run resumes to
exactly the uninterrupted result (Muon's momentum and Adam's moments are checkpointed)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from scaling_training.config import TrainConfig
from scaling_training.loop import train
from scaling_training.progress import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(
    width=32, base_width=16, depth=3, steps=12, eval_every=6, log_every=3, batch_size=32,
    dataset="teacher", optimizer="muon", lr=0.01, checkpoint_every=6, plots=False,
)  # fmt: skip
FLAGS = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]


def quiet(_):
    pass


def test_a_muon_sweep_member_is_its_run(tmp_path):
    settings = SETTINGS | dict(checkpoint_every=0, log_every=12, eval_every=12)
    config = TrainConfig.from_flags(**settings)
    train(dataclasses.replace(config, lrs="0.003,0.01", workdir=str(tmp_path / "s")), echo=quiet)
    result = json.loads((tmp_path / "s" / "sweep.json").read_text())
    single = train(dataclasses.replace(config, workdir=str(tmp_path / "r")), echo=quiet)
    records = read_metrics(str(tmp_path / "r" / "metrics.jsonl"))
    mean = np.mean([r["train_loss"] for r in records if "train_loss" in r])
    assert result["final_train_loss"][0][1] == pytest.approx(mean, rel=1e-5)
    assert result["test_loss"][0][1] == pytest.approx(single.test_loss, rel=1e-5)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["optimizer"] == "muon"


def test_a_killed_muon_run_resumes_exactly(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "tests/scripts/kill_at.py", "9", *FLAGS, f"--workdir={killed}"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "muon x" in proc.stdout  # the report's update column
    lines = []  # the resume, in this process: the kill was a real process's
    train(TrainConfig.from_flags(**SETTINGS, workdir=str(killed)), echo=lines.append)
    assert "resuming from the checkpoint of step 6" in "\n".join(lines)
    straight = tmp_path / "straight"
    train(TrainConfig.from_flags(**SETTINGS, workdir=str(straight)), echo=quiet)
    assert (killed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    import jax
    import orbax.checkpoint as ocp

    def state(workdir):
        path = os.path.abspath(os.path.join(workdir, "checkpoints", "12", "state"))
        return jax.tree.leaves(ocp.StandardCheckpointer().restore(path))

    a, b = state(killed), state(straight)
    assert len(a) == len(b) > 10
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
