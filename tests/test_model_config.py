"""One description of a model: zoo.ModelConfig is train.py's model section and the probes'
model, validated by itself, its heads derived in one place; config.json keeps its layout."""

import dataclasses
import os
import re

import pytest

import zoo
from scaling.setup import PROBE_DEFAULTS, ProbeModel
from scaling_training.checkpoint import check_same_config
from scaling_training.config import (
    FLAG_DEFAULTS,
    MODEL_FLAGS,
    ConfigError,
    TrainConfig,
    config_record,
)
from scaling_training.validation import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# config.json of an lm run with default flags, as written before the model section existed.
OLD_LM_RECORD = {
    "model": "lm", "rule": "mup", "rules_module": "", "width": 128, "depth": 2,
    "base_width": 64, "base_depth": 2, "activation": "relu", "normalization": "layer",
    "dropout": 0.0, "kernel_size": 3, "padding": "zero", "bias": True, "optimizer": "adamw",
    "lr": 0.003, "momentum": 0.9, "weight_decay": 0.5, "steps": 600, "batch_size": 32,
    "seed": 0, "dataset": "grammar_text", "workdir": "runs/lm_mup_w128_d2_s0",
    "eval_every": 500, "log_every": 100, "mesh": "", "fsdp": False, "checkpoint_every": 1000,
    "keep_checkpoints": 3, "lrs": "", "seeds": 1, "data_dir": "", "tensorboard": False,
    "plots": True, "coordinator_address": "", "num_processes": 1, "process_id": 0,
    "connect_timeout": 120, "schedule": "constant", "warmup_steps": 0, "clip_norm": 0.0,
    "dtype": "float32", "augment": "auto", "heads": 4, "head_dim": 0, "mlp_ratio": 4,
    "positions": "learned", "tied": False, "pooling": "cls", "patch_size": 0, "seq_len": 64,
    "base_steps": 0, "base_batch_size": 0, "horizon_beta": 0.0, "batch_lr_scaling": "none",
    "batch_beta2": False, "decay_timescale": False, "weight_decay_mode": "coupled",
    "weight_decay_width": "", "beta2": 0.999, "transfer_from": "",
}  # fmt: skip


def test_config_json_keeps_the_flat_layout_of_earlier_runs():
    assert config_record(TrainConfig.from_flags(model="lm")) == OLD_LM_RECORD
    check_same_config(OLD_LM_RECORD, config_record(TrainConfig.from_flags(model="lm")), "wd")
    flags = {k: v for k, v in OLD_LM_RECORD.items() if k in FLAG_DEFAULTS}
    config = TrainConfig.from_flags(**flags)  # a record read back: the same run
    assert config.model == TrainConfig.from_flags(model="lm").model
    assert TrainConfig.from_flags(**config.flags()) == config
    changed = config.with_flags(bias=False, seed=3)
    assert changed.model == dataclasses.replace(config.model, use_bias=False)
    assert changed.seed == 3 and changed.with_flags(bias=True, seed=0) == config


def test_the_model_flags_are_the_section():
    config = TrainConfig.from_flags(model="vit", width=32, heads=2, bias=False, padding="circular")
    assert config.model.name == "vit" and config.model.use_bias is False
    assert (config.model.width, config.model.heads, config.model.base_width) == (32, 2, 32)
    assert config.flag("model") == "vit" and config.flag("bias") is False
    assert not hasattr(config, "width") and not hasattr(config, "heads")
    assert set(MODEL_FLAGS.values()) <= {f for f in zoo.ModelConfig.__dataclass_fields__}
    built = config.model_for((8, 8, 1), 10)
    assert (built.input_shape, built.num_classes, built.optimizer) == ((8, 8, 1), 10, "adam")
    assert built.conv_padding == "CIRCULAR"


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(width=0), "--width: must be >= 1, got 0"),
        (dict(width=32, base_width=64), "--base_width: must be between 1 and --width=32, got 64"),
        (dict(model="resnet", depth=30), "--depth: resnet depth must be 6n+2"),
        (dict(padding="reflect"), "--padding: unknown padding 'reflect'; choose one of: zero"),
        (
            dict(model="lm", width=96, base_width=64, heads=3),
            "--heads: --width=96 and --base_width=64 must be multiples of --heads=3",
        ),
        (
            dict(model="vit", width=64, base_width=40, head_dim=16),
            "--head_dim: --width=64 and --base_width=40 must be multiples of --head_dim=16",
        ),
        (
            dict(model="lm", width=96, base_width=96, heads=32, positions="rotary"),
            "--positions: rotary needs an even head size, got 3",
        ),
    ],
)
def test_one_validation_for_train_py_and_the_zoo(flags, message):
    with pytest.raises(ConfigError) as caught:
        validate(TrainConfig.from_flags(**flags))
    assert str(caught.value).startswith(message)
    with pytest.raises(ValueError) as zoo_error:  # the zoo's own check, in the same words
        TrainConfig.from_flags(**flags).model.validate()
    assert str(zoo_error.value) == str(caught.value)


def test_heads_are_derived_once():
    fixed_heads = zoo.ModelConfig(width=128, base_width=32, heads=4)
    assert fixed_heads.attention_shape() == (4, 32, 8)
    fixed_size = zoo.ModelConfig(width=128, base_width=32, head_dim=16)
    assert fixed_size.attention_shape() == (8, 16, None)


def test_probes_hold_the_model_and_vary_its_size():
    spec = ProbeModel.of(rule="sp", name="resmlp", base_width=64, base_depth=4)
    assert spec.config == dataclasses.replace(PROBE_DEFAULTS, name="resmlp", base_depth=4)
    small = spec.at(32, 2)  # a size below the base is its own base
    assert (small.width, small.base_width, small.depth, small.base_depth) == (32, 32, 2, 2)
    large = spec.at(256, 8)
    assert (large.base_width, large.base_depth) == (64, 4)
    assert (spec.model, spec.optimizer, spec.num_classes) == ("resmlp", "sgd", 10)


def test_each_model_setting_is_defined_once():
    """`heads: int = 4` (a field with its default) lives in zoo/config.py only, not again in
    the app's or the probes' configs (the fields a user's model has too are left out)."""
    shared = ("name", "optimizer", "input_shape", "num_classes")
    names = [f.name for f in dataclasses.fields(zoo.ModelConfig) if f.name not in shared]
    pattern = re.compile(rf"^    ({'|'.join(names)})\s*:[^=\n]*=[^,#\n]*(?:#.*)?$", re.M)
    found = {}
    for folder in ("zoo", "scaling_training", "scaling"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                with open(os.path.join(ROOT, folder, name)) as f:
                    for match in pattern.finditer(f.read()):
                        found.setdefault(match.group(1), []).append(f"{folder}/{name}")
    assert found == {name: ["zoo/config.py"] for name in names}, found


def test_probes_check_transformers_pre_ln_unless_told():
    from scaling.setup import probe_normalization

    assert probe_normalization("vit") == probe_normalization("lm") == "layer"
    assert probe_normalization("mlp") is None and probe_normalization("resnet") is None
    assert probe_normalization("vit", "none") == "none"
    assert probe_normalization("mlp", "rms") == "rms"
    vit = ProbeModel.of(name="vit", normalization=probe_normalization("vit"))
    assert vit.config.normalization == "layer"
