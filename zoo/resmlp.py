"""Residual MLP: input layer, `depth` = K residual blocks (two linear layers each: depth
counts blocks, not layers), [norm], activation, linear readout.

Block: h + m * W2 act(W1 norm(h)), with m the rule's residual multiplier. The K blocks are
identical and scanned, so depth costs no compile time.
"""

from __future__ import annotations

import jax
from flax import nnx

import rules
from rules import Linear, Rule
from rules.residual import branch_fields
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import norm
from zoo.optional import dropout
from zoo.roles import hidden_meta, input_meta, output_meta
from zoo.stack import run_stack, stack


class DenseBlock(nnx.Module):
    """One residual block: h + m * W2 act(W1 norm(h)) (dropout after the activation)."""

    def __init__(self, c: ModelConfig, rule: Rule, fields: dict, *, rngs: nnx.Rngs):
        w = c.width
        self.norm = norm(c, rule, w, rngs=rngs, **fields)
        # The stream is a sum of pre-activations (gain 1); W2 reads activated units.
        first = hidden_meta(c, w, w, gain=1.0, branch_index=0, branch_layers=2, **fields)
        second = hidden_meta(c, w, w, branch_index=1, branch_layers=2, **fields)
        self.dense1 = Linear(first, rule, use_bias=c.use_bias, rngs=rngs)
        self.dense2 = Linear(second, rule, use_bias=c.use_bias, rngs=rngs)
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = dropout(c.dropout, rngs=rngs)
        blocks, base_blocks = fields["num_blocks"], fields["base_depth"]
        self.residual_multiplier = rules.residual_multiplier(
            rule, blocks, base_blocks, w, c.base_of(w), optimizer=c.optimizer, gain=c.gain
        )

    def __call__(self, h: jax.Array) -> jax.Array:
        u = self.dropout(self.activation(self.dense1(self.norm(h))))
        return h + self.residual_multiplier * self.dense2(u)


class ResMLP(nnx.Module):
    """input (d -> width), K = depth residual blocks (scanned), [norm], act, readout."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c, w = config, config.width
        self.input = Linear(input_meta(c, c.input_size), rule, use_bias=c.use_bias, rngs=rngs)
        fields = branch_fields(c.depth, c.base_depth or c.depth)
        self.blocks = stack(lambda r: DenseBlock(c, rule, fields, rngs=r), c.depth, rngs)
        self.scan = c.scan_blocks
        self.norm = norm(c, rule, w, rngs=rngs)
        self.activation = ACTIVATIONS[c.activation]
        self.output = Linear(output_meta(c, w), rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = run_stack(self.blocks, self.input(x.reshape(x.shape[0], -1)), scan=self.scan)
        return self.output(self.activation(self.norm(h)))
