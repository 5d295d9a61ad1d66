"""Plain CNNs (the AM-muP protocol): `depth` conv layers of `width` channels (the input
conv is the first of them), global average pooling, linear readout. `CNN1D` reads (length,)
or (length, channels) inputs, `CNN2D` images.
"""

from __future__ import annotations

import jax
from flax import nnx

from rules import Conv, LayerMeta, Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import norm
from zoo.optional import dropout
from zoo.roles import hidden_meta, input_meta, output_meta
from zoo.stack import run_stack, stack


def conv(
    c: ModelConfig, meta: LayerMeta, rule: Rule, kernel: tuple[int, ...], *, rngs, strides=1
) -> Conv:
    """A `rules.Conv` with the model's padding, bias and implementation."""
    options = dict(
        padding=c.conv_padding, use_bias=c.use_bias, implementation=c.conv_implementation
    )
    return Conv(meta, rule, kernel, strides=strides, **options, rngs=rngs)


class ConvUnit(nnx.Module):
    """conv -> norm -> activation -> dropout."""

    def __init__(self, config: ModelConfig, meta: LayerMeta, rule: Rule, dims: int, *, rngs):
        c = config
        self.conv = conv(c, meta, rule, (c.kernel_size,) * dims, rngs=rngs)
        self.norm = norm(c, rule, meta.fan_out, rngs=rngs)
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = dropout(c.dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dropout(self.activation(self.norm(self.conv(x))))


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
        first = input_meta(c, self.channels * volume)
        self.input = ConvUnit(c, first, rule, self.dims, rngs=rngs)
        hidden = hidden_meta(c, width * volume, width)
        make = lambda r: ConvUnit(c, hidden, rule, self.dims, rngs=r)  # noqa: E731
        self.hidden = stack(make, c.depth - 1, rngs)
        self.scan = c.scan_blocks
        self.output = Linear(output_meta(c, width), rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], *x.shape[1 : 1 + self.dims], self.channels)
        h = run_stack(self.hidden, self.input(x), scan=self.scan)
        return self.output(h.mean(axis=tuple(range(1, 1 + self.dims))))


class CNN1D(CNN):
    dims = 1


class CNN2D(CNN):
    dims = 2
