"""Optimizers by name, with the learning rate held as an array (sweeps compile once)."""

from __future__ import annotations

import functools
from typing import Any

import optax

import rules


def make_optimizer(
    name: str, lr: float, scales: Any, momentum: float = 0.9, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """`rules.scaled_optimizer` with `learning_rate` injected into the optimizer state."""
    factory = functools.partial(
        rules.scaled_optimizer, name, scales=scales, momentum=momentum, weight_decay=weight_decay
    )
    return optax.inject_hyperparams(factory)(learning_rate=lr)
