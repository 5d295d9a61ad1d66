"""Optimizers by name, with the learning rate held as an array (sweeps compile once)."""

from __future__ import annotations

import functools
from typing import Any

import optax

import rules


def make_optimizer(
    name: str,
    lr: float,
    scales: Any,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    **run_axes: Any,
) -> optax.GradientTransformation:
    """`rules.scaled_optimizer` with `learning_rate` injected into the optimizer state.

    `run_axes` (scaling_training/run_axes.optimizer_options; none: the plain optimizer):
    lr_factor (the injected lr stays the base run's), b2, weight_decay_mode "independent"
    (decay per step wd, not x lr; rules/decay.py).
    """
    if run_axes:
        return _run_axes_optimizer(name, lr, scales, momentum, weight_decay, **run_axes)
    factory = functools.partial(
        rules.scaled_optimizer, name, scales=scales, momentum=momentum, weight_decay=weight_decay
    )
    return optax.inject_hyperparams(factory)(learning_rate=lr)


def _run_axes_optimizer(
    name: str,
    lr: float,
    scales: Any,
    momentum: float,
    weight_decay: float,
    lr_factor: float = 1.0,
    b2: float = 0.999,
    weight_decay_mode: str = "coupled",
) -> optax.GradientTransformation:
    from rules.decay import independent_decay

    coupled = weight_decay_mode == "coupled"

    def factory(learning_rate):
        inner = rules.scaled_optimizer(
            name,
            learning_rate * lr_factor if lr_factor != 1.0 else learning_rate,
            scales,
            momentum=momentum,
            weight_decay=weight_decay if coupled else 0.0,
            b2=b2,
        )
        return inner if coupled else optax.chain(inner, independent_decay(weight_decay, scales))

    return optax.inject_hyperparams(factory)(learning_rate=lr)
