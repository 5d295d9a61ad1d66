"""Optax optimizers by name, with the learning rate held as an array (sweeps compile once)."""

from __future__ import annotations

import optax


def make_optimizer(
    name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """`sgd`, `momentum`, `adam` or `adamw`, wrapped in `optax.inject_hyperparams`."""
    if name == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)
    if name == "momentum":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum)
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    if name == "adamw":
        return optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: sgd, momentum, adam, adamw")
