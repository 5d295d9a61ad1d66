"""Flax NNX layers whose init, forward multiplier and LR multiplier come from a rule.

Each parameter carries its `LayerMeta` and `Scales` as NNX Variable metadata
(`param.meta`, `param.scales`), so optimizers and reports read them off the model.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

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
    value = _normal(key, tuple(shape), float(scales.init_std), float(constant))
    return nnx.Param(value, meta=meta, scales=scales)


@functools.partial(jax.jit, static_argnums=1)
def _normal(key: jax.Array, shape: tuple[int, ...], std: float, constant: float) -> jax.Array:
    """constant + std * N(0, 1) as one compiled program per shape (std and constant are
    arguments): built eagerly, each of the three steps compiled on its own for every new
    shape, and a model of many shapes waited on dozens of small compilations."""
    return constant + std * jax.random.normal(key, shape, jnp.float32)


class Linear(nnx.Module):
    """y = multiplier * (x @ kernel) + bias_multiplier * bias, scales from `rule(meta)`."""

    def __init__(self, meta: LayerMeta, rule: Rule, *, use_bias: bool = True, rngs: nnx.Rngs):
        _add_params(self, (meta.fan_in, meta.fan_out), meta, rule, use_bias, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return _output(self, x @ self.kernel[...])


def _add_params(
    layer: nnx.Module, kernel_shape, meta: LayerMeta, rule: Rule, use_bias: bool, rngs: nnx.Rngs
) -> None:
    """Kernel and optional bias with their scales; their forward multipliers as constants."""
    layer.kernel = scaled_param(rngs.params(), kernel_shape, meta, rule)
    layer.multiplier = layer.kernel.scales.multiplier
    layer.bias = nnx.data(None)
    layer.bias_multiplier = 1.0
    if use_bias:
        layer.bias = scaled_param(rngs.params(), (meta.fan_out,), bias_meta(meta), rule)
        layer.bias_multiplier = layer.bias.scales.multiplier
    layer.record = False  # measurements switch it on to sow pre-activations


def _output(layer: nnx.Module, product: jax.Array) -> jax.Array:
    """multiplier * product + bias_multiplier * bias, sown as the pre-activation if recording."""
    y = product * layer.multiplier
    if layer.bias is not None:
        y = y + layer.bias[...] * layer.bias_multiplier
    return record_preactivation(layer, y)


def record_preactivation(layer: nnx.Module, y: jax.Array) -> jax.Array:
    """Sow `y` as an `nnx.Intermediate` named "preactivation" when `layer.record` is on."""
    if getattr(layer, "record", False):
        layer.sow(nnx.Intermediate, "preactivation", y)
    return y


def scales_of(param: nnx.Variable) -> Scales:
    """The scales a parameter was built with; neutral scales for parameters without them."""
    return param.get_metadata().get("scales") or Scales()


class Conv(nnx.Module):
    """Channels-last N-d convolution, y = multiplier * conv(x, kernel) + bias_multiplier * bias.

    `meta.fan_in` must be in_channels x kernel volume (every input a unit reads) and
    `meta.fan_out` the output channels. `padding` is "SAME" (zeros) or "CIRCULAR" (wraps
    around, as for periodic signals); the output has ceil(size / stride) positions either way.
    `implementation` "im2col" (default: patches @ kernel, fast on XLA:CPU) or "lax"
    (`lax.conv_general_dilated`, cuDNN on GPUs): the same numbers, up to rounding.
    """

    def __init__(
        self,
        meta: LayerMeta,
        rule: Rule,
        kernel_size: tuple[int, ...],
        *,
        strides: int = 1,
        padding: str = "SAME",
        use_bias: bool = True,
        implementation: str = "im2col",
        rngs: nnx.Rngs,
    ):
        if not 1 <= len(kernel_size) <= 3:
            raise ValueError(f"1 to 3 spatial dimensions, got kernel_size {kernel_size}")
        volume = math.prod(kernel_size)
        if meta.fan_in % volume:
            raise ValueError(f"fan_in {meta.fan_in} is not a multiple of kernel volume {volume}")
        if padding not in ("SAME", "CIRCULAR"):
            raise ValueError(f"padding must be SAME or CIRCULAR, got {padding!r}")
        if implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be im2col or lax, got {implementation!r}")
        shape = (*kernel_size, meta.fan_in // volume, meta.fan_out)
        _add_params(self, shape, meta, rule, use_bias, rngs)
        self.kernel_size, self.strides, self.padding = tuple(kernel_size), strides, padding
        self.implementation = implementation

    def __call__(self, x: jax.Array) -> jax.Array:
        wrap = self.padding == "CIRCULAR"
        if self.implementation == "lax":
            return _output(self, _lax_conv(x, self.kernel[...], self.strides, wrap))
        patches = _patches(x, self.kernel_size, self.strides, wrap)
        kernel = self.kernel[...].reshape(-1, self.kernel.shape[-1])
        return _output(self, patches @ kernel)


CONV_IMPLEMENTATIONS = ("im2col", "lax")


def _same_pads(spatial, kernel_size, stride: int) -> list[tuple[int, int]]:
    """Per-axis (before, after) padding giving ceil(n / stride) outputs, as lax "SAME"."""
    pads = []
    for n, k in zip(spatial, kernel_size):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, wrap: bool) -> jax.Array:
    """The same convolution as `_patches(...) @ kernel`, by `lax.conv_general_dilated`."""
    dims = x.ndim - 2
    pads = _same_pads(x.shape[1:-1], kernel.shape[:dims], stride)
    if wrap:
        x, pads = jnp.pad(x, [(0, 0), *pads, (0, 0)], mode="wrap"), [(0, 0)] * dims
    spatial = "DHW"[-dims:]
    numbers = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return jax.lax.conv_general_dilated(
        x, kernel, (stride,) * dims, pads, dimension_numbers=numbers
    )


def _patches(x: jax.Array, kernel_size: tuple[int, ...], stride: int, wrap: bool) -> jax.Array:
    """im2col: (N, *spatial, C) -> (N, *out_spatial, prod(kernel_size) * C), SAME-style padding.

    A convolution as patches @ kernel rather than `lax.conv_general_dilated`: on XLA:CPU the
    kernel gradient of a convolution inside `scan` (stacked blocks) ran ~13x slower than this.
    Features are ordered (kernel position, channel), matching kernel.reshape(-1, out).
    """
    spatial = x.shape[1:-1]
    out = [-(-n // stride) for n in spatial]  # ceil(n / stride), as lax "SAME"
    pads = _same_pads(spatial, kernel_size, stride)
    x = jnp.pad(x, [(0, 0), *pads, (0, 0)], mode="wrap" if wrap else "constant")
    columns = []
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        index = tuple(slice(i, i + (o - 1) * stride + 1, stride) for i, o in zip(offset, out))
        columns.append(x[(slice(None), *index)])
    return jnp.concatenate(columns, axis=-1)


def require_scales(state: nnx.State) -> None:
    """RuleError when a Param of `state` carries no scales: without them an optimizer would
    be plain optax (LR multiplier 1 everywhere), silently not the rule."""
    from rules.validation import RuleError

    flat = list(nnx.to_flat_state(state))
    bare = ["/".join(str(p) for p in path) for path, v in flat if "scales" not in v.get_metadata()]
    if not bare:
        return
    some = "all" if len(bare) == len(flat) else f"{len(bare)} of the {len(flat)}"
    raise RuleError(
        f"{some} parameters of this model carry no rule metadata (e.g. {bare[0]!r}), so its "
        "optimizer would be plain optax; call rules.parametrize(model, base, rule, ...) on "
        "the whole model first (a restored model: the same call with init=None on the "
        "abstract model before restoring into it)"
    )


def param_metas(model: nnx.Module) -> list[LayerMeta]:
    """The LayerMeta of every parameter that has one."""
    state = nnx.state(model, nnx.Param)
    metas = (v.get_metadata().get("meta") for _, v in nnx.to_flat_state(state))
    return [m for m in metas if m is not None]
