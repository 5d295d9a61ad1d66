"""Plain CNNs (the AM-muP protocol): `depth` conv layers of `width` channels, global average
pooling, linear readout. `CNN1D` reads (length,) or (length, channels) inputs, `CNN2D` images.
"""

from __future__ import annotations

import jax
from flax import nnx

from rules import Conv, LayerMeta, Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import make_norm
from zoo.stack import run_stack, stack


class ConvUnit(nnx.Module):
    """conv -> norm -> activation -> dropout."""

    def __init__(self, config: ModelConfig, meta: LayerMeta, rule: Rule, dims: int, *, rngs):
        c = config
        self.conv = Conv(meta, rule, (c.kernel_size,) * dims, padding=c.conv_padding,
                         use_bias=c.use_bias, implementation=c.conv_implementation,
                         rngs=rngs)  # fmt: skip
        norm = c.meta("norm", 1, meta.fan_out, scales_in=False, scales_out=True, gain=1.0)
        self.norm = nnx.data(make_norm(c.normalization, norm, rule, rngs=rngs))
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = nnx.data(nnx.Dropout(c.dropout, rngs=rngs) if c.dropout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv(x)
        h = self.norm(h) if self.norm is not None else h
        h = self.activation(h)
        return self.dropout(h) if self.dropout is not None else h


class CNN(nnx.Module):
    """input conv (channels -> width), depth - 1 hidden convs (scanned), mean pool, readout."""

    dims = 1

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c, width, volume = config, config.width, config.kernel_size**self.dims
        if len(c.input_shape) not in (self.dims, self.dims + 1):
            raise ValueError(
                f"{type(self).__name__} needs {self.dims}-d inputs, got {c.input_shape}"
            )
        self.channels = c.input_shape[self.dims] if len(c.input_shape) > self.dims else 1
        first = c.meta(
            "input", self.channels * volume, width, scales_in=False, scales_out=True, gain=1.0
        )
        self.input = ConvUnit(c, first, rule, self.dims, rngs=rngs)
        hidden = c.meta(
            "hidden", width * volume, width, scales_in=True, scales_out=True, gain=c.gain
        )
        self.hidden = nnx.data(None)
        if c.depth > 1:
            make = lambda r: ConvUnit(c, hidden, rule, self.dims, rngs=r)  # noqa: E731
            self.hidden = stack(make, c.depth - 1, rngs)
        self.scan = c.scan_blocks
        last = c.meta("output", width, c.num_classes, scales_in=True, scales_out=False, gain=c.gain)
        self.output = Linear(last, rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], *x.shape[1 : 1 + self.dims], self.channels)
        h = self.input(x)
        if self.hidden is not None:
            h = run_stack(self.hidden, h, scan=self.scan)
        return self.output(h.mean(axis=tuple(range(1, 1 + self.dims))))


class CNN1D(CNN):
    dims = 1


class CNN2D(CNN):
    dims = 2
