"""Multilayer perceptron: `depth` hidden layers of `width` units, then a linear readout."""

from __future__ import annotations

import jax
from flax import nnx

from rules import Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig


class MLP(nnx.Module):
    """input (d -> width), depth - 1 hidden (width -> width), readout (width -> classes)."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c, width = config, config.width
        self.activation = ACTIVATIONS[c.activation]
        first = c.meta("input", c.input_size, width, scales_in=False, scales_out=True, gain=1.0)
        self.input = Linear(first, rule, use_bias=c.use_bias, rngs=rngs)
        hidden = c.meta("hidden", width, width, scales_in=True, scales_out=True, gain=c.gain)
        self.hidden = nnx.List(
            [Linear(hidden, rule, use_bias=c.use_bias, rngs=rngs) for _ in range(c.depth - 1)]
        )
        last = c.meta("output", width, c.num_classes, scales_in=True, scales_out=False, gain=c.gain)
        self.output = Linear(last, rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.activation(self.input(x.reshape(x.shape[0], -1)))
        for layer in self.hidden:
            h = self.activation(layer(h))
        return self.output(h)
