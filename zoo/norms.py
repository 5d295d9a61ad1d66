"""Normalization layers whose scale and bias carry rule metadata (role "norm")."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from rules import Rule
from rules.meta import LayerMeta
from zoo.config import ModelConfig
from zoo.optional import Identity
from zoo.roles import norm_meta


def _init_and_metadata(meta: LayerMeta, rule: Rule, constant: float):
    """An initializer `constant + N(0, init_std^2)` and the Param metadata for `meta`."""
    scales = rule(meta)
    if scales.multiplier != 1.0:
        # nnx norms have no forward multiplier; refuse rather than silently ignore the rule.
        raise ValueError(f"norm parameters support multiplier 1 only, rule gave {scales}")

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return constant + scales.init_std * jax.random.normal(key, shape, dtype)

    return init, {"meta": meta, "scales": scales}


def norm(c: ModelConfig, rule: Rule, features: int, *, rngs: nnx.Rngs, **fields) -> nnx.Module:
    """The model's normalization (`c.normalization`) over `features` channels, role "norm"
    (`fields`: other LayerMeta fields, e.g. a residual branch's); the identity for "none"."""
    return make_norm(c.normalization, norm_meta(c, features, **fields), rule, rngs=rngs)


def make_norm(kind: str, meta: LayerMeta, rule: Rule, *, rngs: nnx.Rngs) -> nnx.Module:
    """BatchNorm, LayerNorm or RMSNorm over the last axis (`meta.fan_out` features); the
    identity for "none".

    `meta` is the norm's: role "norm", fan_out = the features (channels). BatchNorm
    normalises over batch and positions; LayerNorm over the channels of each position.
    The scale starts at 1 and the bias at 0 (plus noise if the rule asks for init_std > 0).
    """
    if kind == "none":
        return Identity()
    scale_init, scale_metadata = _init_and_metadata(meta, rule, 1.0)
    bias_init, bias_metadata = _init_and_metadata(dataclasses.replace(meta, role="bias"), rule, 0)
    common = dict(
        scale_init=scale_init,
        bias_init=bias_init,
        scale_metadata=scale_metadata,
        bias_metadata=bias_metadata,
        rngs=rngs,
    )
    if kind == "batch":
        return nnx.BatchNorm(meta.fan_out, momentum=0.9, **common)
    if kind == "layer":
        return nnx.LayerNorm(meta.fan_out, **common)
    if kind == "rms":  # scale only: no bias
        del common["bias_init"], common["bias_metadata"]
        return nnx.RMSNorm(meta.fan_out, **common)
    raise ValueError(f"unknown normalization {kind!r}; choose one of: none, batch, layer, rms")
