"""Validation of a TrainConfig: every flag checked before anything runs, one message per bad
flag (`ConfigError(flag, message)` -> `error: --flag: message`, status 2).

Imports stay light (no jax): `train.py --help` and flag errors must be fast.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import rules
import scaling_data as data
import zoo
from scaling_training.config import DTYPES, OPTIMIZERS, TrainConfig, sweep_lrs
from scaling_training.errors import ConfigError
from scaling_training.interrupts import Interrupted
from scaling_training.messages import user_error
from scaling_training.pairs import pair_problem
from scaling_training.run_axes import validate_axes
from scaling_training.schedules import SCHEDULES


def _choose(flag: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(flag, f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")


def validate(config: TrainConfig) -> TrainConfig:
    """Check every setting; raise ConfigError naming the first bad flag (the model section's
    own checks: `zoo.ModelConfig.validate`).

    Returns the config with `--augment=auto` resolved (what the run uses).
    """
    _choose("model", config.model.name, zoo.names())
    if config.rules_module:
        try:
            rules.import_rules(config.rules_module)
        except Exception as e:  # a user's file: any failure is theirs to fix
            raise ConfigError(
                "rules_module", f"cannot import {config.rules_module!r}: {user_error(e)}"
            ) from None
        except BaseException as e:  # KeyboardInterrupt or a BaseException of their own
            if isinstance(e, Interrupted):  # our Ctrl-C handler's: not the module's
                raise
            raise ConfigError(
                "rules_module", f"cannot import {config.rules_module!r}: {user_error(e)}"
            ) from None
    _choose("rule", config.rule, rules.names())
    _choose("optimizer", config.optimizer, OPTIMIZERS)
    config.model.validate(ConfigError)  # after --rules_module: it may add activations
    validate_transformer(config)
    if config.dataset:
        _choose("dataset", config.dataset, data.names())
    # every (model, dataset) pair: scaling_training/pairs.py
    pair = pair_problem(config.model.name, config.dataset_name)
    if pair:
        raise ConfigError("dataset", pair)
    for flag in ("steps", "batch_size", "eval_every", "log_every"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    if not 0 < config.lr < math.inf:  # also rejects NaN
        raise ConfigError("lr", f"must be > 0 and finite, got {config.lr}")
    if not 0 <= config.weight_decay_value < math.inf:
        raise ConfigError("weight_decay", f"must be >= 0 and finite, got {config.weight_decay}")
    if not 0 <= config.momentum < 1:
        raise ConfigError("momentum", f"must be in [0, 1), got {config.momentum}")
    validate_run_length(config)
    validate_axes(config)  # --base_steps, --weight_decay_mode, ... (run_axes.py)
    validate_scale(config)
    validate_paths(config)
    if config.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(
            "tensorboard", "needs tensorboardX: pip install 'scaling-rules[tensorboard]'"
        )
    return validate_features(config)


SEED_LIMIT = 2**32  # seeds go to numpy's and JAX's generators as unsigned 32-bit words


STEP_LIMIT = 2**31 - 1  # step counters are int32 inside the jitted chunks


CHUNK_LIMIT = 10**6  # chunk boundaries (log, eval, checkpoint) a run may have


def validate_run_length(config: TrainConfig) -> None:
    """Seeds and step counts that the generators, counters and chunking can hold."""
    last_seed = config.seed + max(config.seeds, 1) - 1
    if config.seed < 0 or last_seed >= SEED_LIMIT:
        span = f" (with --seeds={config.seeds}, up to {last_seed})" if config.seeds > 1 else ""
        raise ConfigError("seed", f"must be in [0, {SEED_LIMIT}), got {config.seed}{span}")
    if config.steps > STEP_LIMIT:
        raise ConfigError("steps", f"must be <= {STEP_LIMIT}, got {config.steps}")
    chunks = sum(
        config.steps // every
        for every in (config.log_every, config.eval_every, config.checkpoint_every)
        if every > 0
    )
    if chunks > CHUNK_LIMIT:
        raise ConfigError(
            "steps",
            f"{config.steps} steps would end {chunks} chunks at --log_every, --eval_every and "
            f"--checkpoint_every boundaries (limit {CHUNK_LIMIT}); raise those or lower --steps",
        )


def validate_paths(config: TrainConfig) -> None:
    """--data_dir and --workdir, read but not touched: the first error before any write."""
    if config.data_dir:
        where = os.path.expanduser(config.data_dir)
        if os.path.exists(where) and not os.path.isdir(where):
            raise ConfigError("data_dir", f"{config.data_dir!r} is a file, not a folder")
        if os.path.isdir(where) and not os.access(where, os.R_OK | os.X_OK):
            raise ConfigError("data_dir", f"{config.data_dir!r} is not readable")
    workdir = config.workdir_path
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError("workdir", f"{workdir!r} is a file, not a folder; pick another")
    archive = os.path.join(workdir, "archive")
    if os.path.exists(archive) and not os.path.isdir(archive):
        raise ConfigError(
            "workdir", f"{archive!r} is a file, but earlier runs are archived there; move it"
        )


def validate_features(config: TrainConfig) -> TrainConfig:
    """Schedule, clipping, dtype and augmentation; "auto" augmentation resolved."""
    _choose("schedule", config.schedule, SCHEDULES)
    _choose("dtype", config.dtype, DTYPES)
    _choose("augment", config.augment, ("auto",) + data.AUGMENTATIONS)
    if not 0 <= config.warmup_steps <= config.steps:
        raise ConfigError(
            "warmup_steps", f"must be in [0, --steps={config.steps}], got {config.warmup_steps}"
        )
    if not 0 <= config.clip_norm < float("inf"):  # also rejects NaN
        raise ConfigError("clip_norm", f"must be >= 0 and finite (0: off), got {config.clip_norm}")
    if config.augment == "auto":
        config = dataclasses.replace(config, augment=data.default_augmentation(config.dataset_name))
    return config


def validate_transformer(config: TrainConfig) -> None:
    """The transformers' data flags: --seq_len, and a text set for lm only (their model
    flags are the model section's, zoo.ModelConfig.validate)."""
    if config.seq_len < 1:
        raise ConfigError("seq_len", f"must be >= 1, got {config.seq_len}")
    if config.seq_len > 4096:
        raise ConfigError("seq_len", f"must be <= 4096, got {config.seq_len}")
    model = config.model.name
    if model not in zoo.TRANSFORMERS:
        return
    dataset = config.dataset_name
    if (model == "lm") != data.is_text(dataset):
        wanted = "a text set (grammar_text)" if model == "lm" else "an image or 1D set"
        raise ConfigError("dataset", f"--model={model} needs {wanted}, got {dataset!r}")


def validate_processes(config: TrainConfig) -> None:
    """The multi-host flags, checked before joining (train.py calls it first)."""
    if config.num_processes < 1:
        raise ConfigError("num_processes", f"must be >= 1, got {config.num_processes}")
    if not 0 <= config.process_id < config.num_processes:
        raise ConfigError(
            "process_id",
            f"must be in [0, --num_processes={config.num_processes}), got {config.process_id}",
        )
    if not 1 <= config.connect_timeout <= 24 * 3600:
        raise ConfigError(
            "connect_timeout", f"must be 1 .. 86400 seconds, got {config.connect_timeout}"
        )
    if config.num_processes > 1 and not config.coordinator_address:
        raise ConfigError("coordinator_address", "multi-host runs need host:port of process 0")
    if config.coordinator_address:
        host, _, port = config.coordinator_address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                "coordinator_address",
                f"expected host:port with a port in 1..65535, got {config.coordinator_address!r}",
            )


def validate_mesh(spec: str, members: int = 0) -> None:
    """The grammar of --mesh and its members axis against the sweep's `members` runs (0: not
    a sweep), in scaling_training.sharding's words; device counts are checked there."""
    if not spec.strip():
        return
    from scaling_training.sharding import check_members, parse_mesh

    axes = parse_mesh(spec, 0)  # the grammar, in the words train() would use later
    check_members(axes, members)
    if "data" not in axes and "members" not in axes:  # a sweep may put every device on members
        raise ConfigError("mesh", f"needs a data axis (e.g. data:1,model:2), got {spec!r}")


def validate_scale(config: TrainConfig) -> None:
    """The flags of sharding, checkpoints, sweeps and multi-host runs."""
    for flag in ("keep_checkpoints", "seeds"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    if config.checkpoint_every < 0:
        raise ConfigError("checkpoint_every", f"must be >= 0, got {config.checkpoint_every}")
    validate_processes(config)
    validate_mesh(config.mesh, len(sweep_lrs(config)) * config.seeds)
    if sweep_lrs(config):
        if config.fsdp:
            raise ConfigError("fsdp", "sweeps (--lrs) copy each run's parameters; drop --fsdp")
    elif config.seeds != 1:
        raise ConfigError("seeds", "only sweeps use --seeds; add --lrs=a,b,c or use --seed")
