"""Checkpoints: a SIGKILLed run resumes to exactly the uninterrupted result (with a warm-up,
a cosine schedule, clipping and augmentation: their state is the step and the optimizer's);
a changed config or a damaged checkpoint is one line, status 2, and leaves the workdir as
it was."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(
    width=32, base_width=16, depth=2, steps=24, eval_every=8, log_every=4, batch_size=32,
    checkpoint_every=8, keep_checkpoints=2, dataset="digits", plots=False,
    schedule="cosine", warmup_steps=4, clip_norm=1.0, augment="crop_flip",
)  # fmt: skip
FLAGS = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]


def run_in_process(workdir):
    """The same command run inside pytest (no second interpreter start-up)."""
    from scaling_training.config import TrainConfig
    from scaling_training.loop import train

    lines = []
    train(TrainConfig.from_flags(**SETTINGS, workdir=str(workdir)), echo=lines.append)
    return "\n".join(lines)


def run(*args, kill_at=None):
    prefix = ["tests/scripts/kill_at.py", str(kill_at)] if kill_at else ["train.py"]
    return subprocess.run(
        [sys.executable, *prefix, *FLAGS, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip


def snapshot(folder):
    """Every file under `folder` with its bytes and modification time."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def restored_state(workdir, step):
    import orbax.checkpoint as ocp

    path = os.path.join(workdir, "checkpoints", str(step), "state")
    return ocp.StandardCheckpointer().restore(os.path.abspath(path))


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed at step 13 (checkpoint of step 8 on disk, metrics written past it)."""
    workdir = tmp_path_factory.mktemp("ck") / "killed"
    proc = run(f"--workdir={workdir}", kill_at=13)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["8"]
    assert '"step": 12' in (workdir / "metrics.jsonl").read_text()
    return workdir


def one_line_error(proc, start):
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr


def test_changed_config_is_refused_and_touches_nothing(killed):
    before = snapshot(killed)
    one_line_error(run(f"--workdir={killed}", "--lr=0.01"), "error: --lr: is 0.01 but")
    assert snapshot(killed) == before


def test_corrupt_checkpoint_is_refused_and_touches_nothing(killed, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(killed, broken)
    for dirpath, _, files in os.walk(broken / "checkpoints" / "8" / "state"):
        for name in files:
            with open(os.path.join(dirpath, name), "r+b") as f:
                size = f.seek(0, 2)
                f.seek(0)
                f.write(b"\x00garbage" * max(1, size // 8))
    before = snapshot(broken)
    one_line_error(run(f"--workdir={broken}"), "error: --workdir: checkpoint ")
    assert snapshot(broken) == before


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(killed, tmp_path):
    # order: the refusals above ran first on the same killed workdir and changed nothing.
    # The kill is a real process's (the fixture); the resume is a result, checked in this
    # process (test_train_cli shows that separate processes repeat a run exactly).
    assert "resuming from the checkpoint of step 8" in run_in_process(killed)
    straight = tmp_path / "straight"
    run_in_process(straight)

    assert (killed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    assert sorted(os.listdir(killed / "checkpoints")) == ["16", "24"]  # keep_checkpoints=2
    a, b = restored_state(killed, 24), restored_state(straight, 24)
    leaves_a, leaves_b = _leaves(a), _leaves(b)
    assert len(leaves_a) == len(leaves_b) > 6
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # A finished run rerun starts afresh, its outputs (checkpoints too) archived.
    assert "resuming" not in run_in_process(straight)
    assert (straight / "archive" / "1" / "checkpoints" / "24").is_dir()


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_a_failed_save_keeps_late_io_errors_quiet(monkeypatch):
    """tensorstore reports each write still pending after a failed save through
    sys.unraisablehook ("Event loop is closed"), up to the exit: after the quieting, such a
    report reaches neither the earlier hook nor stderr (the full-disk case's one line)."""
    from scaling_training import checkpoint as ck

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a))
    monkeypatch.setattr("threading.excepthook", seen.append)
    ck._quiet_thread_errors()  # monkeypatch puts every hook back after the test

    class LateError:
        def __del__(self):
            raise RuntimeError("Event loop is closed")

    LateError()  # its __del__ goes to sys.unraisablehook
    assert seen == []
