"""The scale flags as a user meets them: one-line errors, plots, TensorBoard events."""

import dataclasses
import os

import pytest
from cli_cases import one_line, run_table

from scaling_training.config import TrainConfig
from scaling_training.loop import train

BAD_FLAGS = [
    (["--mesh=batch:2"], "error: --mesh: unknown axis 'batch'"),
    (["--lrs=1e-3,fast"], "error: --lrs: expected numbers"),
    (["--seeds=3"], "error: --seeds: only sweeps"),
    (["--lrs=0.1,0.2", "--mesh=members:3"], "error: --mesh: the sweep's 2 runs"),
    (["--mesh=members:1"], "error: --mesh: the members axis is for sweeps"),
    (["--num_processes=2"], "error: --coordinator_address:"),
    (["--dataset=cifar10", "--data_dir={tmp}"], "error: --data_dir: cifar10 is not prepared"),
]


@pytest.fixture(scope="module")
def bad_flag_results(tmp_path_factory):
    """Every command line of BAD_FLAGS in one interpreter (tests/cli_cases.py)."""

    def complete(args, case):
        filled = [a.replace("{tmp}", str(case / "tfds")) for a in args]
        return [*filled, f"--workdir={case / 'w'}"], case / "w" / "metrics.jsonl"

    return run_table("train", BAD_FLAGS, tmp_path_factory.mktemp("bad_flags"), complete)


@pytest.mark.parametrize("args, start", BAD_FLAGS)
def test_bad_scale_flags_are_one_line_and_status_2(bad_flag_results, args, start):
    result = bad_flag_results[" ".join(args)]
    line = one_line(result)
    assert line.startswith(start), line
    assert result["same"]  # no metrics.jsonl written
    if "data_dir" in start:
        assert "tfds build cifar10" in line


def test_progress_bar_plot_and_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboardX")
    lines = []
    config = TrainConfig.from_flags(
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
