"""The starting values `rules.parametrize` gives a model written without `rules`, by `init`:
"keep" (the author's init rescaled by the rule's width factor, `rules.rescale`), "rule" (a
redraw by the rule's formula, `initialize`) or None (untouched); then the `zero=` choices.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from rules import rescale
from rules.meta import LayerMeta, Scales

INIT_MODES = ("keep", "rule", None)
NO_KEY = object()  # `key` not given (key=None is the pre-`init` spelling of init=None)


def init_mode(init: str | None, key: Any, zero: Any) -> str | None:
    """The init mode `parametrize` runs, from `init` and the (older) `key` argument."""
    if init not in INIT_MODES:
        raise ValueError(f"init must be 'keep', 'rule' or None, got {init!r}")
    if key is None and init == "keep":
        init = None  # key=None: values untouched, as before `init` existed
    if init == "rule" and (key is None or key is NO_KEY):
        raise ValueError("init='rule' draws new values by the rule's formula: pass key=")
    if init != "rule" and key is not None and key is not NO_KEY:
        raise ValueError(
            "key= only serves init='rule' (a redraw by the rule's formula); the default "
            "init='keep' rescales your model's own init and needs no key"
        )
    if init is None and zero:
        raise ValueError("zero= sets values, and init=None (or key=None) leaves them untouched")
    return init


def initial_values(
    values: Any, base: Any, metas: Any, scales: Any, factors: Any, init, key, zero
) -> Any:
    """The values (unboxed) that `init` and `zero` ask for (`init_mode` checked them)."""
    if init == "rule":
        values = initialize(values, metas, scales, key)
    elif init == "keep":
        values = rescale.keep_values(values, base, metas, factors)
    if zero:
        values = rescale.zero_values(values, rescale.zero_mask(metas, zero))
    return values


def initialize(params: Any, metas: Any, scales: Any, key: jax.Array) -> Any:
    """Fresh values: N(0, init_std) for weights and biases, 1 + N(0, init_std) for norm scales."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    meta_leaves = jax.tree.leaves(metas, is_leaf=lambda x: isinstance(x, LayerMeta))
    scale_leaves = jax.tree.leaves(scales, is_leaf=lambda x: isinstance(x, Scales))
    keys = jax.random.split(key, len(leaves))
    fresh = []
    for leaf, meta, s, k in zip(leaves, meta_leaves, scale_leaves, keys):
        value = _draw(k, jnp.shape(leaf), jnp.result_type(leaf), s.init_std, 0.0)
        fresh.append(1.0 + value if meta.role == "norm" else value)
    return jax.tree_util.tree_unflatten(treedef, fresh)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draw(key: jax.Array, shape: tuple, dtype: Any, std: float, zero: float) -> jax.Array:
    """zero + std x N(0, 1) as one program per (shape, dtype), whatever the std (eagerly the
    draw, the product and the sum each compile a program per shape); the same bits as the
    eager ops: `zero` is an argument, as a constant 0 the compiler would drop the sum (-0.0
    would stay), and the norms' 1 + is added outside (compiled in, it may fuse into one
    rounding)."""
    return zero + std * jax.random.normal(key, shape, dtype)
