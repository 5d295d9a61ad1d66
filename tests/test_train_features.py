"""Schedules, clipping, bfloat16 compute, augmentation and best metrics, as the engine and
train() run them, each against an independent reference."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rules
import scaling_data as data
from scaling_data.augment import crop_padding
from scaling_training import engine
from scaling_training.config import ConfigError, TrainConfig
from scaling_training.loop import train
from scaling_training.progress import read_metrics
from scaling_training.schedules import lr_factor, with_schedule_and_clipping
from scaling_training.validation import validate

SMALL = TrainConfig.from_flags(
    width=32, base_width=16, depth=2, steps=12, eval_every=4, log_every=4, batch_size=32,
    dataset="teacher", optimizer="sgd", checkpoint_every=0, plots=False,
)  # fmt: skip


def quiet(_):
    pass


@pytest.mark.parametrize(
    "name, expected",
    [
        # steps 10, warm-up 2: counts 0, 1 warm up; then t = count - 2 over 8 decay steps.
        ("constant", [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ("linear", [0.5, 1] + [1 - t / 8 for t in range(8)]),
        ("cosine", [0.5, 1] + [0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(8)]),
        ("rsqrt", [0.5, 1] + [1 / math.sqrt(1 + t / 2) for t in range(8)]),
    ],
)
def test_schedule_factors(name, expected):
    factor = lr_factor(name, steps=10, warmup_steps=2)
    got = [float(factor(count)) for count in range(10)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)  # float32


def _model_and_grads():
    choice = validate(dataclasses.replace(SMALL, optimizer="sgd"))
    from scaling_training.recipe import build_model

    dataset = data.load("teacher")
    model = build_model(choice, dataset)
    _, params, _ = engine.split_model(model)
    keys = jax.random.split(jax.random.key(1), len(jax.tree.leaves(params)))
    leaves = [jax.random.normal(k, p.shape) for k, p in zip(keys, jax.tree.leaves(params))]
    return model, params, jax.tree.unflatten(jax.tree.structure(params), leaves)


def test_schedule_scales_the_global_lr_and_keeps_the_rule_multipliers():
    """Each update under a cosine schedule equals the rule's plain optimizer at lr x f(step)."""
    model, params, grads = _model_and_grads()
    scales = rules.param_scales(model)
    scheduled = with_schedule_and_clipping(
        rules.optimizer("sgd", 0.1, scales, momentum=0.0, inject=True),
        "cosine",
        steps=5,
        warmup_steps=1,
    )
    state = scheduled.init(params)
    factor = lr_factor("cosine", 5, 1)
    for count in range(5):
        update, state = scheduled.update(grads, state, params)
        plain = rules.optimizer(
            "sgd", 0.1 * float(factor(count)), scales, momentum=0.0, inject=True
        )
        expected, _ = plain.update(grads, plain.init(params), params)
        for a, b in zip(jax.tree.leaves(update), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_clipping_acts_on_raw_gradients_before_the_rule_multipliers():
    model, params, grads = _model_and_grads()
    scales = rules.param_scales(model)
    norm = float(optax.tree.norm(grads))
    assert norm > 1
    clipped = with_schedule_and_clipping(
        rules.optimizer("sgd", 0.1, scales, momentum=0.0, inject=True), clip_norm=1.0
    )
    update, _ = clipped.update(grads, clipped.init(params), params)
    plain = rules.optimizer("sgd", 0.1, scales, momentum=0.0, inject=True)
    small = jax.tree.map(lambda g: g / norm, grads)
    expected, _ = plain.update(small, plain.init(params), params)
    for a, b in zip(jax.tree.leaves(update), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_bfloat16_compute_is_close_to_float32_but_not_equal():
    config = validate(dataclasses.replace(SMALL, optimizer="adam", lr=1e-3))
    from scaling_training.recipe import build_model, build_optimizer

    dataset = data.load("teacher")
    model = build_model(config, dataset)
    graphdef, params, rest = engine.split_model(model)
    tx = build_optimizer(config, model)
    x, y = engine.chunk_batches(dataset, 32, 4, 0, 0)
    runs = {}
    for name, dtype in (("f32", None), ("bf16", jnp.bfloat16)):
        chunk = engine.make_train_chunk(graphdef, tx, dtype)
        new_params, _, _, losses, _ = chunk(params, rest, tx.init(params), x, y)
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new_params))
        runs[name] = (np.asarray(losses), new_params)
    (l32, p32), (l16, p16) = runs["f32"], runs["bf16"]
    np.testing.assert_allclose(l16, l32, rtol=2e-2)
    assert not np.array_equal(l16, l32)
    kernel32, kernel16 = p32["hidden"][0]["kernel"], p16["hidden"][0]["kernel"]
    np.testing.assert_allclose(kernel16, kernel32, atol=2e-3)
    assert not np.array_equal(kernel16, kernel32)


def test_augmentation_is_a_pad_crop_flip_decided_by_seed_and_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8, 16, 16, 2)).astype(np.float32)  # [K, B, H, W, C]
    out = data.augment_batches(x, "crop_flip", seed=5, first_step=10, batch_size=8)
    # The same steps gathered in another chunking, or by another process, agree.
    late = data.augment_batches(x[1:], "crop_flip", 5, 11, 8)
    np.testing.assert_array_equal(out[1:], late)
    cols = data.augment_batches(x[:, 4:], "crop_flip", 5, 10, 8, slice(4, None))
    np.testing.assert_array_equal(out[:, 4:], cols)
    assert not np.array_equal(out, data.augment_batches(x, "crop_flip", 6, 10, 8))
    # Each image is a 16x16 window of the zero-padded (2 px) image, maybe mirrored.
    pad = crop_padding(16)
    assert pad == 2
    flips = 0
    for k in range(3):
        for b in range(8):
            padded = np.pad(x[k, b], ((pad, pad), (pad, pad), (0, 0)))
            windows = [
                (flip, padded[i : i + 16, j : j + 16][:, :: -1 if flip else 1])
                for i in range(2 * pad + 1)
                for j in range(2 * pad + 1)
                for flip in (False, True)
            ]
            matches = [flip for flip, w in windows if np.array_equal(w, out[k, b])]
            assert matches, (k, b)
            flips += matches[0]
    assert 0 < flips < 24  # both happen
    assert data.augment_batches(x, "none", 5, 10, 8) is x


def test_augmented_runs_repeat_exactly_and_differ_from_plain(tmp_path):
    config = dataclasses.replace(SMALL, dataset="digits", steps=4, eval_every=4)
    losses = {}
    for name, augment in (("a", "crop_flip"), ("b", "crop_flip"), ("plain", "none")):
        workdir = tmp_path / name
        train(dataclasses.replace(config, augment=augment, workdir=str(workdir)), echo=quiet)
        records = read_metrics(str(workdir / "metrics.jsonl"))
        losses[name] = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses["a"] == losses["b"]
    assert losses["a"] != losses["plain"]
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())
    assert recorded["augment"] == "crop_flip"


def test_summary_has_the_last_and_the_best_test_metrics(tmp_path):
    train(dataclasses.replace(SMALL, workdir=str(tmp_path)), echo=quiet)
    summary = json.loads((tmp_path / "summary.json").read_text())
    evals = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if "test_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert summary["test_loss"] == evals[-1]["test_loss"]
    assert summary["best_test_loss"] == min(r["test_loss"] for r in evals)
    best = max(evals, key=lambda r: r["test_accuracy"])
    assert summary["best_test_accuracy"] == best["test_accuracy"]
    assert summary["best_test_accuracy_step"] == best["step"]


def test_scheduled_sweep_member_equals_its_run(tmp_path):
    """Sweeps sweep the peak lr: a member with a warm-up and cosine decay is its run."""
    config = dataclasses.replace(
        SMALL, schedule="cosine", warmup_steps=3, clip_norm=0.5, log_every=12, eval_every=12
    )
    train(dataclasses.replace(config, lrs="0.05,0.2", workdir=str(tmp_path / "s")), echo=quiet)
    result = json.loads((tmp_path / "s" / "sweep.json").read_text())
    single = train(dataclasses.replace(config, lr=0.2, workdir=str(tmp_path / "r")), echo=quiet)
    records = read_metrics(str(tmp_path / "r" / "metrics.jsonl"))
    mean = np.mean([r["train_loss"] for r in records if "train_loss" in r])
    assert result["final_train_loss"][0][1] == pytest.approx(mean, rel=1e-5)
    assert result["test_loss"][0][1] == pytest.approx(single.test_loss, rel=1e-5)
    for name in ("r", "s"):
        recorded = json.loads((tmp_path / name / "config.json").read_text())
        assert (recorded["schedule"], recorded["warmup_steps"]) == ("cosine", 3)
        assert (recorded["clip_norm"], recorded["dtype"]) == (0.5, "float32")


@pytest.mark.parametrize(
    "change, flag",
    [
        (dict(schedule="step"), "schedule"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(warmup_steps=13), "warmup_steps"),
        (dict(clip_norm=-1.0), "clip_norm"),
        (dict(clip_norm=float("nan")), "clip_norm"),
        (dict(dtype="float16"), "dtype"),
        (dict(augment="rotate"), "augment"),
        (dict(augment="crop"), "augment"),  # teacher has no images
    ],
)
def test_bad_feature_settings_name_their_flag(change, flag, tmp_path):
    config = dataclasses.replace(SMALL, workdir=str(tmp_path / "w"), **change)
    with pytest.raises(ConfigError) as error:
        train(config, echo=quiet)
    assert error.value.flag == flag
    assert not (tmp_path / "w" / "metrics.jsonl").exists()


def test_auto_augmentation_is_on_for_natural_images_only():
    assert validate(dataclasses.replace(SMALL, dataset="cifar10")).augment == "crop_flip"
    assert validate(dataclasses.replace(SMALL, dataset="digits")).augment == "none"
    assert validate(dataclasses.replace(SMALL, dataset="mnist")).augment == "none"
