"""Multilayer perceptron: `depth` hidden layers of `width` units, then a linear readout.

Each hidden layer is linear -> [norm] -> activation -> [dropout].
"""

from __future__ import annotations

import jax
from flax import nnx

from rules import Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import make_norm


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
        # Layers are kept as plain attributes so that pre-activations keep the names
        # input, hidden/k, output; the norms (one per hidden layer) sit beside them.
        norm = c.meta("norm", 1, width, scales_in=False, scales_out=True, gain=1.0)
        self.norms = nnx.List(
            [make_norm(c.normalization, norm, rule, rngs=rngs) for _ in range(c.depth)]
            if c.normalization != "none"
            else []
        )
        self.dropout = nnx.data(nnx.Dropout(c.dropout, rngs=rngs) if c.dropout else None)
        last = c.meta("output", width, c.num_classes, scales_in=True, scales_out=False, gain=c.gain)
        self.output = Linear(last, rule, use_bias=c.use_bias, rngs=rngs)

    def _unit(self, index: int, z: jax.Array) -> jax.Array:
        z = self.norms[index](z) if len(self.norms) else z
        h = self.activation(z)
        return self.dropout(h) if self.dropout is not None else h

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self._unit(0, self.input(x.reshape(x.shape[0], -1)))
        for index, layer in enumerate(self.hidden, start=1):
            h = self._unit(index, layer(h))
        return self.output(h)
