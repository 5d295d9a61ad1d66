"""Residual MLP: input layer, `depth` = K residual blocks, activation, linear readout.

Block: h + m * W2 act(W1 norm(h)), with m the rule's branch multiplier. The K blocks are
identical and scanned, so depth costs no compile time.
"""

from __future__ import annotations

import jax
from flax import nnx

from rules import Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import make_norm
from zoo.residual import branch_fields, branch_multiplier
from zoo.stack import run_stack, stack


def _norm(c: ModelConfig, rule: Rule, rngs: nnx.Rngs, **fields):
    meta = c.meta("norm", 1, c.width, scales_in=False, scales_out=True, gain=1.0, **fields)
    return nnx.data(make_norm(c.normalization, meta, rule, rngs=rngs))


class DenseBlock(nnx.Module):
    """One residual block: h + m * W2 act(W1 norm(h)) (dropout after the activation)."""

    def __init__(self, c: ModelConfig, rule: Rule, fields: dict, *, rngs: nnx.Rngs):
        w = c.width
        self.norm = _norm(c, rule, rngs, **fields)
        # The stream is a sum of pre-activations (gain 1); W2 reads activated units.
        first = c.meta("hidden", w, w, scales_in=True, scales_out=True, gain=1.0,
                       branch_index=0, branch_layers=2, **fields)  # fmt: skip
        second = c.meta("hidden", w, w, scales_in=True, scales_out=True, gain=c.gain,
                        branch_index=1, branch_layers=2, **fields)  # fmt: skip
        self.dense1 = Linear(first, rule, use_bias=c.use_bias, rngs=rngs)
        self.dense2 = Linear(second, rule, use_bias=c.use_bias, rngs=rngs)
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = nnx.data(nnx.Dropout(c.dropout, rngs=rngs) if c.dropout else None)
        self.branch_multiplier = branch_multiplier(c, rule, w, fields)

    def __call__(self, h: jax.Array) -> jax.Array:
        u = self.norm(h) if self.norm is not None else h
        u = self.activation(self.dense1(u))
        u = self.dropout(u) if self.dropout is not None else u
        return h + self.branch_multiplier * self.dense2(u)


class ResMLP(nnx.Module):
    """input (d -> width), K = depth residual blocks (scanned), [norm], act, readout."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c, w = config, config.width
        first = c.meta("input", c.input_size, w, scales_in=False, scales_out=True, gain=1.0)
        self.input = Linear(first, rule, use_bias=c.use_bias, rngs=rngs)
        fields = branch_fields(c.depth, c.base_depth or c.depth)
        self.blocks = stack(lambda r: DenseBlock(c, rule, fields, rngs=r), c.depth, rngs)
        self.scan = c.scan_blocks
        self.norm = _norm(c, rule, rngs)
        self.activation = ACTIVATIONS[c.activation]
        last = c.meta("output", w, c.num_classes, scales_in=True, scales_out=False, gain=c.gain)
        self.output = Linear(last, rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = run_stack(self.blocks, self.input(x.reshape(x.shape[0], -1)), scan=self.scan)
        h = self.norm(h) if self.norm is not None else h
        return self.output(self.activation(h))
