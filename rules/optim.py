"""Optax adapters: per-parameter LR multipliers on top of any optax optimizer."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax
from flax import nnx

from rules.nnx_layers import scales_of


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

    Scaling after the optimizer is exact for any optimizer whose final update is
    the global LR times a direction: (lr * d) * m == (lr * m) * d.
    """
    return optax.chain(optimizer, scale_by_tree(multipliers))


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def lr_multipliers(model: nnx.Module) -> dict:
    """A pure dict of LR multipliers with the structure of the model's `nnx.Param` state."""
    state = nnx.state(model, nnx.Param)
    multipliers = jax.tree.map(lambda v: scales_of(v).lr, state, is_leaf=_is_variable)
    return nnx.to_pure_dict(multipliers)
