"""Rules for Flax models written without `rules`, in NNX or Linen.

Each parameter's metadata is inferred by comparing its shape with the same model built
at a base width (`jax.eval_shape`, no compute): a dimension that differs grows with
width. Kernels follow Flax's layout (..., in, out), so fan_in = prod(shape[:-1]).
Overrides by path pattern fix what shapes cannot tell (embeddings, tied weights, gains).

A foreign forward pass has no multipliers, so a rule's multiplier a is folded into init
and LR with the abc symmetry (Yang & Hu): (a, std, lr) acts like (1, a std, a lr) under
Adam and (1, a std, a^2 lr) under SGD, with Adam's epsilon divided by a.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rules.algebra import Rule
from rules.meta import LayerMeta, Scales
from rules.validation import RuleError, check

Overrides = Mapping[str, str | Mapping[str, Any]]


def path_string(path) -> str:
    """'layers/0/kernel' from a jax key path."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return "/".join(parts)


def _infer_one(path: str, shape: tuple, base: tuple, gain: float, input_gain: float, **common):
    if len(shape) != len(base):
        raise ValueError(f"{path}: shape {shape} and base shape {base} differ in rank")
    if len(shape) >= 2:
        scales_in, scales_out = shape[-2] != base[-2], shape[-1] != base[-1]
        role = {(True, True): "hidden", (False, True): "input", (True, False): "output"}.get(
            (scales_in, scales_out), "hidden"
        )
        return LayerMeta(
            role=role,
            fan_in=math.prod(shape[:-1]),
            fan_out=shape[-1],
            base_fan_in=math.prod(base[:-1]) if scales_in else None,
            base_fan_out=base[-1] if scales_out else None,
            gain=input_gain if role == "input" else gain,
            path=path,
            **common,
        )
    size, base_size = (shape[0], base[0]) if shape else (1, 1)
    return LayerMeta(
        role="norm" if path.rsplit("/", 1)[-1] == "scale" else "bias",
        fan_in=1,
        fan_out=size,
        base_fan_out=base_size if size != base_size else None,
        gain=gain,
        path=path,
        **common,
    )


def infer_metas(
    params: Any,
    base_params: Any,
    *,
    optimizer: str = "sgd",
    gain: float = 2.0,
    input_gain: float = 1.0,
    depth: int = 1,
    base_depth: int = 1,
    overrides: Overrides | None = None,
) -> Any:
    """A tree of LayerMeta like `params`, from its shapes against `base_params`' shapes.

    `overrides` maps a regex (searched in 'a/b/kernel' paths) to a role or to a dict of
    LayerMeta fields; later patterns win.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    base_leaves, base_treedef = jax.tree_util.tree_flatten_with_path(base_params)
    if treedef != base_treedef:
        raise ValueError("the base model has a different parameter structure than the model")
    common = dict(optimizer=optimizer, depth=depth, base_depth=base_depth)
    metas = []
    for (path, leaf), (_, base_leaf) in zip(leaves, base_leaves):
        name = path_string(path)
        meta = _infer_one(
            name, tuple(jnp.shape(leaf)), tuple(jnp.shape(base_leaf)), gain, input_gain, **common
        )
        for pattern, change in (overrides or {}).items():
            if re.search(pattern, name):
                fields = {"role": change} if isinstance(change, str) else dict(change)
                meta = dataclasses.replace(meta, **fields)
        metas.append(meta)
    return jax.tree_util.tree_unflatten(treedef, metas)


def fold_multiplier(scales: Scales, optimizer: str) -> Scales:
    """The same training dynamics with multiplier 1 (abc symmetry)."""
    a = scales.multiplier
    lr = scales.lr * (a if optimizer == "adam" else a * a)
    return scales.replace(
        multiplier=1.0, init_std=scales.init_std * a, lr=lr, adam_eps=scales.adam_eps / a
    )


def _is_meta(x: Any) -> bool:
    return isinstance(x, LayerMeta)


def rule_scales(rule: Rule, metas: Any) -> Any:
    """A tree of Scales for `metas`, multipliers folded in; RuleError if the rule cannot fit."""
    if "residual" in rule.requires:
        raise RuleError(
            f"rule {rule.name!r} multiplies residual branches, which a foreign model's forward "
            "pass cannot do; build the model with rules layers, or pick a rule without branches"
        )
    check(rule, jax.tree.leaves(metas, is_leaf=_is_meta))
    return jax.tree.map(lambda m: fold_multiplier(rule(m), m.optimizer), metas, is_leaf=_is_meta)


def initialize(params: Any, metas: Any, scales: Any, key: jax.Array) -> Any:
    """Fresh values: N(0, init_std) for weights and biases, 1 + N(0, init_std) for norm scales."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    meta_leaves = jax.tree.leaves(metas, is_leaf=_is_meta)
    scale_leaves = jax.tree.leaves(scales, is_leaf=lambda x: isinstance(x, Scales))
    keys = jax.random.split(key, len(leaves))
    fresh = [
        (1.0 if meta.role == "norm" else 0.0)
        + s.init_std * jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf))
        for leaf, meta, s, k in zip(leaves, meta_leaves, scale_leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(treedef, fresh)


def apply_to_linen(
    params: Any, base_params: Any, rule: Rule, key: jax.Array, **infer_kwargs
) -> tuple[Any, Any, Any]:
    """(new params, scales, metas) for a Linen params tree; pass `scales` to `scaled_optimizer`."""
    metas = infer_metas(params, base_params, **infer_kwargs)
    scales = rule_scales(rule, metas)
    return initialize(params, metas, scales, key), scales, metas


def apply_to_nnx(model, base_model, rule: Rule, key: jax.Array, **infer_kwargs) -> Any:
    """Re-initialise an NNX model's Params by `rule` in place and attach meta/scales metadata.

    `base_model` may be abstract (`nnx.eval_shape(lambda: Model(..., base width ...))`).
    Returns the scales tree (as `rules.param_scales(model)` would afterwards).
    """
    from flax import nnx

    state = nnx.state(model, nnx.Param)
    params = nnx.to_pure_dict(state)
    base_params = nnx.to_pure_dict(nnx.state(base_model, nnx.Param))
    new_params, scales, metas = apply_to_linen(params, base_params, rule, key, **infer_kwargs)
    nnx.replace_by_pure_dict(state, new_params)
    nnx.update(model, state)
    flat_meta = dict(nnx.to_flat_state(nnx.State(metas)))
    flat_scales = dict(nnx.to_flat_state(nnx.State(scales)))
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        variable.set_metadata(meta=flat_meta[path], scales=flat_scales[path])
    return scales
