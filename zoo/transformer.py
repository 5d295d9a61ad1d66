"""The pieces `lm` and `vit` share: the pre-LN block, embeddings, rotary positions, the stack.

Block (pre-LN, both branches residual):
    h = h + m * proj(attention(norm1(h)))
    h = h + m * fc2(act(fc1(norm2(h))))
m is the rule's residual multiplier (depth_mup, completep), the logits are `logit_scale x q.k`
with the rule's attention scale (muP: sqrt(d0)/d), q, k, v from one fused `qkv` layer.
Every weight is a `rules.Linear` of role "hidden" in a residual branch; the stream is a sum
of pre-activations, so layers reading it (qkv, fc1) have gain 1 and fc2 the activation's.
`depth` counts blocks (K), each an attention and an MLP branch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

import rules
from rules import Linear, Rule
from rules.nnx_layers import record_preactivation, scaled_param
from rules.residual import branch_fields
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.norms import norm
from zoo.optional import dropout
from zoo.roles import hidden_meta, input_meta
from zoo.stack import run_stack, stack


def rotary(x: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) of x [batch, length, heads, head_dim]:
    pairs (x_i, x_{i + d/2}) rotated by angle position x base^(-2i/d)."""
    length, half = x.shape[1], x.shape[-1] // 2
    frequencies = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * frequencies  # [length, half]
    cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
    first, second = x[..., :half], x[..., half:]
    return jnp.concatenate([first * cos - second * sin, first * sin + second * cos], -1)


class Embedding(nnx.Module):
    """A table [count, width] of role "input" whose rows are looked up (tokens) or added
    (positions, the class token). A row is a one-hot input, so fan_in = 1: the table's
    entries get the input layer's init (std sqrt(gain) = 1), LR and multiplier."""

    def __init__(self, c: ModelConfig, rule: Rule, count: int, *, rngs: nnx.Rngs, **fields):
        meta = input_meta(c, 1, **fields)
        self.table = scaled_param(rngs.params(), (count, c.width), meta, rule)
        self.multiplier = self.table.scales.multiplier
        self.record = False

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return record_preactivation(self, self.table[...][tokens] * self.multiplier)

    def rows(self, count: int) -> jax.Array:
        """The first `count` rows, multiplied: [count, width]."""
        return self.table[...][:count] * self.multiplier


class Positions(Embedding):
    """Learned positions: h [batch, length, width] + the first `length` rows."""

    def __call__(self, h: jax.Array) -> jax.Array:
        return h + self.rows(h.shape[1])


class TransformerBlock(nnx.Module):
    """One pre-LN block: attention branch, then MLP branch (dropout at each branch's end)."""

    def __init__(self, c: ModelConfig, rule: Rule, fields: dict, causal: bool, *, rngs):
        w, hidden = c.width, c.mlp_ratio * c.width
        self.heads, self.head_dim, base_head_dim = c.attention_shape()

        def linear(fan_in: int, fan_out: int, gain: float) -> Linear:
            meta = hidden_meta(c, fan_in, fan_out, gain=gain, **fields)
            return Linear(meta, rule, use_bias=c.use_bias, rngs=rngs)

        self.norm1 = norm(c, rule, w, rngs=rngs, **fields)
        self.norm2 = norm(c, rule, w, rngs=rngs, **fields)
        self.qkv = linear(w, 3 * w, 1.0)
        self.proj = linear(w, w, 1.0)
        self.fc1 = linear(w, hidden, 1.0)
        self.fc2 = linear(hidden, w, c.gain)
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = dropout(c.dropout, rngs=rngs)
        self.causal = causal
        self.rotary = c.positions == "rotary"
        self.logit_scale = rules.logit_scale(rule, self.head_dim, base_head_dim)
        blocks, base_blocks = fields["num_blocks"], fields["base_depth"]
        self.residual_multiplier = rules.residual_multiplier(
            rule, blocks, base_blocks, w, c.base_of(w), optimizer=c.optimizer, gain=c.gain
        )

    def attention(self, u: jax.Array) -> jax.Array:
        batch, length, width = u.shape
        q, k, v = jnp.split(self.qkv(u).reshape(batch, length, self.heads, -1), 3, axis=-1)
        if self.rotary:
            q, k = rotary(q), rotary(k)
        a = rules.dot_product_attention(q, k, v, scale=self.logit_scale, is_causal=self.causal)
        return self.proj(a.reshape(batch, length, width))

    def __call__(self, h: jax.Array) -> jax.Array:
        h = h + self.residual_multiplier * self.dropout(self.attention(self.norm1(h)))
        u = self.dropout(self.activation(self.fc1(self.norm2(h))))
        return h + self.residual_multiplier * self.fc2(u)


class Trunk(nnx.Module):
    """K = depth stacked blocks (scanned) and the final norm."""

    def __init__(self, c: ModelConfig, rule: Rule, causal: bool, *, rngs: nnx.Rngs):
        fields = branch_fields(c.depth, c.base_depth or c.depth)
        make = lambda r: TransformerBlock(c, rule, fields, causal, rngs=r)  # noqa: E731
        self.blocks = stack(make, c.depth, rngs)
        self.scan = c.scan_blocks
        self.norm = norm(c, rule, c.width, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.norm(run_stack(self.blocks, h, scan=self.scan))
