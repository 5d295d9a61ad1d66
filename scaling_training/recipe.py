"""What a run's settings turn into: the model, the optimizer and the compute dtype.

Shared by single runs (scaling_training/single.py) and sweeps (scaling_training/sweep.py), so a
sweep member is built exactly like its separate run.
"""

from __future__ import annotations

import jax.numpy as jnp

import rules
import scaling_data as data
from scaling_training import models
from scaling_training.config import TrainConfig
from scaling_training.errors import ConfigError, rule_error
from scaling_training.run_axes import optimizer_arguments
from scaling_training.schedules import with_schedule_and_clipping


def build_model(config: TrainConfig, dataset: data.Dataset, seed: int | None = None):
    """The zoo model of `config` for `dataset`, seeded from `seed` (default `config.seed`);
    ConfigError when the rule does not fit the model."""
    model = config.model_for(dataset.input_shape, dataset.num_classes)
    seed = config.seed if seed is None else seed
    try:
        return models.build(model, config.rule, seed)
    except rules.RuleError as e:
        raise rule_error(e, model.name) from None


def build_optimizer(config: TrainConfig, model, lr: float | None = None):
    """The rule's optimizer for `model` at peak lr `lr` (default `config.lr`), with the
    schedule and gradient clipping of `config`; the lr is injected state (sweeps set it)."""
    scales, weight_decay, run_axes = optimizer_arguments(config, model)  # --base_steps, ...
    optimizer = rules.optimizer(
        config.optimizer,
        config.lr if lr is None else lr,
        scales,
        momentum=config.momentum,
        weight_decay=weight_decay,
        # All of the optimizer's numbers are state for plain runs, only the LR with run axes.
        inject=("learning_rate",) if run_axes else True,
        **run_axes,
    )
    return with_schedule_and_clipping(
        optimizer, config.schedule, config.steps, config.warmup_steps, config.clip_norm
    )


def compute_dtype(config: TrainConfig):
    """None for float32 (no casts at all), else the jnp dtype of `--dtype`."""
    return None if config.dtype == "float32" else jnp.dtype(config.dtype)


def check_augmentation(config: TrainConfig, dataset: data.Dataset) -> None:
    if config.augment != "none" and len(dataset.input_shape) != 3:
        raise ConfigError(
            "augment",
            f"{config.augment} needs images [height, width, channels], but {dataset.name} "
            f"has inputs of shape {dataset.input_shape}; use --augment=none",
        )
