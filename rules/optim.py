"""Optax adapters: every optimizer with per-parameter LR, weight-decay and epsilon multipliers.

Update of a parameter p with scales s, direction d (SGD: the gradient; momentum: its
trace; Adam: m / (sqrt(v) + eps x s.adam_eps); Lion: the sign of the interpolation):

    p <- p - lr x (s.lr x d + weight_decay x s.weight_decay x p)

Decay is decoupled and not multiplied by s.lr (see `Scales.weight_decay`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rules.meta import Scales
from rules.nnx_layers import scales_of
from rules.optim_names import OPTIMIZERS


class ScaleByTreeState(NamedTuple):
    pass


def scale_by_tree(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of `multipliers` (a tree of floats)."""

    def init(params):
        del params
        return ScaleByTreeState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u * m, updates, multipliers), state

    return optax.GradientTransformation(init, update)


def with_lr_multipliers(optimizer: optax.GradientTransformation, multipliers: Any):
    """`optimizer` followed by per-parameter LR multipliers.

    Exact for any optimizer whose final update is the global LR times a direction:
    (lr * d) * m == (lr * m) * d. Any decay inside `optimizer` is scaled too.
    """
    return optax.chain(optimizer, scale_by_tree(multipliers))


def add_decayed_weights_tree(weight_decay: float, multipliers: Any) -> optax.GradientTransformation:
    """updates + weight_decay x multiplier x params, leaf by leaf."""

    def init(params):
        del params
        return ScaleByTreeState()

    def update(updates, state, params=None):
        if isinstance(weight_decay, (int, float)) and weight_decay == 0:
            return updates, state  # a Python zero: skip the pass (XLA keeps 0 * p for NaNs)
        if params is None:
            raise ValueError("weight decay needs the parameters: call update(g, state, params)")
        decayed = jax.tree.map(
            lambda u, p, m: u + weight_decay * m * p, updates, params, multipliers
        )
        return decayed, state

    return optax.GradientTransformation(init, update)


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adam_tree_eps(b1: float, b2: float, eps: float, eps_multipliers: Any):
    """Adam's direction m_hat / (sqrt(v_hat) + eps x multiplier), epsilon per parameter."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(jnp.zeros([], jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        mu_correction, nu_correction = 1 - b1**count, 1 - b2**count

        def direction(m, v, e):
            return (m / mu_correction) / (jnp.sqrt(v / nu_correction) + eps * e)

        return jax.tree.map(direction, mu, nu, eps_multipliers), AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def _field(scales: Any, name: str) -> Any:
    return jax.tree.map(lambda s: getattr(s, name), scales, is_leaf=lambda x: isinstance(x, Scales))


def scaled_optimizer(
    name: str,
    learning_rate: float,
    scales: Any,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Optimizer `name` (see OPTIMIZERS) applying a tree of `Scales` like the params tree.

    "adam" and "adamw" differ only in the weight decay callers usually give them.
    Lion uses b1=0.9, b2=0.99 (its paper's defaults) unless given otherwise.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        direction = optax.identity()
    elif name == "momentum":
        direction = optax.trace(decay=momentum)
    elif name == "lion":
        direction = optax.scale_by_lion(b1=b1, b2=0.99 if b2 == 0.999 else b2)
    else:
        direction = scale_by_adam_tree_eps(b1, b2, eps, _field(scales, "adam_eps"))
    # No `if weight_decay:` here: under optax.inject_hyperparams it is a traced array.
    return optax.chain(
        direction,
        scale_by_tree(_field(scales, "lr")),
        add_decayed_weights_tree(weight_decay, _field(scales, "weight_decay")),
        optax.scale_by_learning_rate(learning_rate),
    )


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def param_scales(model: nnx.Module) -> dict:
    """A pure dict of `Scales` with the structure of the model's `nnx.Param` state."""
    state = nnx.state(model, nnx.Param)
    return nnx.to_pure_dict(jax.tree.map(scales_of, state, is_leaf=_is_variable))


def lr_multipliers(model: nnx.Module) -> dict:
    """A pure dict of LR multipliers with the structure of the model's `nnx.Param` state."""
    return _field(param_scales(model), "lr")
