"""Multilayer perceptron: `depth` counts its hidden layers of `width` units (the input
layer is the first of them), then a linear readout.

Each hidden layer is linear -> [norm] -> activation -> [dropout].
"""

from __future__ import annotations

import jax
from flax import nnx

from rules import Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import norm
from zoo.optional import dropout
from zoo.roles import hidden_meta, input_meta, output_meta


class MLP(nnx.Module):
    """input (d -> width), depth - 1 hidden (width -> width), readout (width -> classes)."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c, width = config, config.width
        self.activation = ACTIVATIONS[c.activation]
        self.input = Linear(input_meta(c, c.input_size), rule, use_bias=c.use_bias, rngs=rngs)
        hidden = hidden_meta(c, width, width)
        self.hidden = nnx.List(
            [Linear(hidden, rule, use_bias=c.use_bias, rngs=rngs) for _ in range(c.depth - 1)]
        )
        # Layers are kept as plain attributes so that pre-activations keep the names
        # input, hidden/k, output; the norms (one per layer before the readout) sit beside them.
        self.norms = nnx.List([norm(c, rule, width, rngs=rngs) for _ in range(c.depth)])
        self.dropout = dropout(c.dropout, rngs=rngs)
        self.output = Linear(output_meta(c, width), rule, use_bias=c.use_bias, rngs=rngs)

    def _unit(self, index: int, z: jax.Array) -> jax.Array:
        return self.dropout(self.activation(self.norms[index](z)))

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self._unit(0, self.input(x.reshape(x.shape[0], -1)))
        for index, layer in enumerate(self.hidden, start=1):
            h = self._unit(index, layer(h))
        return self.output(h)
