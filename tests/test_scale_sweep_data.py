"""Vmapped lr sweeps (a diverging member poisons no other) and tfds datasets (mocked)."""

import dataclasses
import json

import numpy as np
import pytest

from scaling_training.config import TrainConfig
from scaling_training.loop import train
from scaling_training.progress import read_metrics

SMALL = TrainConfig.from_flags(
    width=32, base_width=16, depth=2, steps=16, eval_every=16, log_every=8, batch_size=32,
    dataset="teacher", optimizer="sgd", checkpoint_every=0, plots=False,
)  # fmt: skip


def quiet(_):
    pass


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    config = dataclasses.replace(
        SMALL, lrs="0.03,1e5,0.3", seeds=2, plots=True, workdir=str(workdir)
    )
    train(config, echo=quiet)
    return workdir, json.loads((workdir / "sweep.json").read_text())


def test_sweep_records_the_diverging_member_and_picks_a_finite_best(sweep):
    workdir, result = sweep
    assert result["lrs"] == [0.03, 1e5, 0.3] and result["seeds"] == [0, 1]
    assert result["diverged"] == [[False, True, False]] * 2
    assert all(1 <= s[1] <= 16 for s in result["diverged_at_step"])
    assert [row[1] for row in result["final_train_loss"]] == [None, None]
    assert result["best_lr"] in (0.03, 0.3)
    for row in result["test_accuracy"]:
        assert 0 <= row[0] <= 1 and 0 <= row[2] <= 1
    assert (workdir / "sweep.png").stat().st_size > 1000


@pytest.mark.parametrize("lr_index, lr, seed", [(0, 0.03, 0), (2, 0.3, 1)])
def test_sweep_members_match_separate_runs(sweep, tmp_path, lr_index, lr, seed):
    """The diverging neighbour in the same program does not change a member at all."""
    _, result = sweep
    config = dataclasses.replace(SMALL, lr=lr, seed=seed, workdir=str(tmp_path))
    single = train(config, echo=quiet)
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    last = [r["train_loss"] for r in records if "train_loss" in r][-SMALL.log_every :]
    member = seed - result["seeds"][0]
    assert result["final_train_loss"][member][lr_index] == pytest.approx(np.mean(last), abs=1e-5)
    assert result["test_accuracy"][member][lr_index] == pytest.approx(single.test_accuracy)


def test_mock_tfds_dataset_trains(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = dataclasses.replace(
        SMALL, dataset="fashion_mnist", batch_size=16, steps=4, workdir=str(tmp_path)
    )
    with tfds.testing.mock_data(num_examples=48):
        result = train(config, echo=quiet)
    assert result.steps_done == 4 and not result.diverged
    assert json.loads((tmp_path / "config.json").read_text())["dataset"] == "fashion_mnist"
    assert len([r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if "train_loss" in r]) == 4


def test_sweep_member_equals_its_run_with_batch_norm_and_dropout(tmp_path):
    """Both evaluate in eval mode (running statistics, no dropout): a sweep member's train
    losses, test loss and test accuracy are those of its separate run.

    No biases: a bias just before BatchNorm has a zero gradient up to rounding, and Adam
    would turn that rounding noise (which differs between vmapped and plain programs) into
    full-size steps of the running mean."""
    config = SMALL.with_flags(
        normalization="batch", dropout=0.5, optimizer="adam", bias=False, log_every=4
    )
    sweep_dir, run_dir = tmp_path / "sweep", tmp_path / "run"
    train(dataclasses.replace(config, lrs="0.01,0.003", workdir=str(sweep_dir)), echo=quiet)
    result = json.loads((sweep_dir / "sweep.json").read_text())
    single = train(dataclasses.replace(config, lr=0.003, workdir=str(run_dir)), echo=quiet)
    records = read_metrics(str(run_dir / "metrics.jsonl"))
    last = [r["train_loss"] for r in records if "train_loss" in r][-config.log_every :]
    assert result["final_train_loss"][0][1] == pytest.approx(np.mean(last), rel=1e-5)
    assert result["test_loss"][0][1] == pytest.approx(single.test_loss, rel=1e-5)
    assert result["test_accuracy"][0][1] == pytest.approx(single.test_accuracy, abs=1e-9)
