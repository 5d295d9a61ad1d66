"""Flax NNX layers whose init, forward multiplier and LR multiplier come from a rule.

Each parameter carries its `LayerMeta` and `Scales` as NNX Variable metadata
(`param.meta`, `param.scales`), so optimizers and reports read them off the model.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from rules.algebra import Rule
from rules.meta import LayerMeta, Scales


def bias_meta(kernel_meta: LayerMeta) -> LayerMeta:
    """The metadata of a layer's bias: a vector along the layer's output dimension."""
    return dataclasses.replace(kernel_meta, role="bias", fan_in=1, base_fan_in=None)


def scaled_param(
    key: jax.Array, shape: tuple[int, ...], meta: LayerMeta, rule: Rule, constant: float = 0.0
) -> nnx.Param:
    """A parameter initialised as `constant + N(0, init_std^2)` with its metadata attached."""
    scales = rule(meta)
    value = constant + scales.init_std * jax.random.normal(key, shape, jnp.float32)
    return nnx.Param(value, meta=meta, scales=scales)


class Linear(nnx.Module):
    """y = multiplier * (x @ kernel) + bias_multiplier * bias, scales from `rule(meta)`."""

    def __init__(self, meta: LayerMeta, rule: Rule, *, use_bias: bool = True, rngs: nnx.Rngs):
        self.kernel = scaled_param(rngs.params(), (meta.fan_in, meta.fan_out), meta, rule)
        self.multiplier = self.kernel.scales.multiplier
        self.bias = nnx.data(None)
        self.bias_multiplier = 1.0
        if use_bias:
            self.bias = scaled_param(rngs.params(), (meta.fan_out,), bias_meta(meta), rule)
            self.bias_multiplier = self.bias.scales.multiplier
        self.record = False  # measurements switch it on to sow pre-activations

    def __call__(self, x: jax.Array) -> jax.Array:
        y = (x @ self.kernel[...]) * self.multiplier
        if self.bias is not None:
            y = y + self.bias[...] * self.bias_multiplier
        return record_preactivation(self, y)


def record_preactivation(layer: nnx.Module, y: jax.Array) -> jax.Array:
    """Sow `y` as an `nnx.Intermediate` named "preactivation" when `layer.record` is on."""
    if getattr(layer, "record", False):
        layer.sow(nnx.Intermediate, "preactivation", y)
    return y


def scales_of(param: nnx.Variable) -> Scales:
    """The scales a parameter was built with; neutral scales for parameters without them."""
    return param.get_metadata().get("scales") or Scales()


def param_metas(model: nnx.Module) -> list[LayerMeta]:
    """The LayerMeta of every parameter that has one."""
    state = nnx.state(model, nnx.Param)
    metas = (v.get_metadata().get("meta") for _, v in nnx.to_flat_state(state))
    return [m for m in metas if m is not None]
