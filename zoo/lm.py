"""`lm`: a decoder-only transformer over tokens (bytes for the offline text set).

tokens -> embedding (+ learned positions, or rotary in every block) -> K pre-LN causal
blocks (scanned) -> norm -> readout to the vocabulary. Roles: the token and position tables
are input-like (fan_in 1), the readout output-like. A tied readout reuses the token table,
so it cannot take the output layer's own init: it multiplies h @ table^T by the output
role's (multiplier x init std) / the table's init std, which gives the product the
readout's scale under every rule (muP: ~1/width) while the table keeps the input LR.
`depth` counts the transformer blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rules import Linear, Rule
from rules.nnx_layers import record_preactivation
from zoo.config import ModelConfig
from zoo.optional import Identity
from zoo.roles import output_meta
from zoo.transformer import Embedding, Positions, Trunk


def tied_multiplier(c: ModelConfig, rule: Rule, embedding: Embedding) -> float:
    """The factor on h @ table^T that stands in for an output layer's init and multiplier."""
    out, table = rule(output_meta(c, c.width, gain=1.0)), embedding.table.scales
    if table.init_std == 0:
        raise ValueError(f"a tied readout needs a random embedding; {rule.name} gives std 0")
    return out.multiplier * out.init_std / table.init_std


class TiedReadout(nnx.Module):
    """logits = readout_multiplier x h @ table^T (the token table, shared)."""

    def __init__(self, multiplier: float):
        self.readout_multiplier = multiplier
        self.record = False

    def __call__(self, h: jax.Array, table: jax.Array) -> jax.Array:
        return record_preactivation(self, (h @ table.T) * self.readout_multiplier)


class LM(nnx.Module):
    """Decoder-only transformer: x [batch, length] int tokens -> logits [batch, length, vocab].

    `config.input_shape` = (context length,), `config.num_classes` = vocabulary size.
    """

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c = config
        (self.context,) = c.input_shape
        self.input = Embedding(c, rule, c.num_classes, rngs=rngs)
        learned = c.positions == "learned"  # else rotary, inside the blocks
        self.positions = Positions(c, rule, self.context, rngs=rngs) if learned else Identity()
        self.trunk = Trunk(c, rule, causal=True, rngs=rngs)
        if c.tied:
            self.output = TiedReadout(tied_multiplier(c, rule, self.input))
        else:
            # The readout reads the stream (or its norm), a sum of pre-activations: gain 1.
            meta = output_meta(c, c.width, gain=1.0)
            self.output = Linear(meta, rule, use_bias=c.use_bias, rngs=rngs)
        self.tied = c.tied

    def __call__(self, tokens: jax.Array) -> jax.Array:
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(
                f"lm reads integer token ids, got {tokens.dtype} inputs (probes that feed "
                "Gaussian inputs do not apply; see tests/test_model_pairs.py for token inputs)"
            )
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"sequence of {length} tokens exceeds the context {self.context}")
        h = self.trunk(self.positions(self.input(tokens)))
        if self.tied:
            return self.output(h, self.input.table[...])
        return self.output(h)
