"""Attention logits under a rule: the scale on q.k that muP changes from 1/sqrt(d) to 1/d.

With head dimension d, standard attention computes softmax(q.k / sqrt(d)). Under muP
(Tensor Programs V) q and k become correlated after training, so q.k grows like d and the
logits need 1/d. Written relative to the base head dimension d0 (microsoft/mup's
convention), muP's scale is sqrt(d0) / d: equal to the standard 1/sqrt(d0) at the base.

A rule says this through a pseudo-layer of role "attention" (fan_in = d): the scale is
1/sqrt(d) times the rule's `multiplier` for it, so a rule that says nothing about attention
keeps the standard scale.

Three ways to use it in a model:
- `dot_product_attention(q, k, v, scale=...)`: JAX's fused attention (flash kernels on GPU).
- `attention_fn(scale)`: a drop-in `attention_fn` for flax's `nnx.MultiHeadAttention` and
  `nn.MultiHeadDotProductAttention` (which divide by sqrt(d) themselves).
- `logit_scale(...)` alone, for attention code of your own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rules.algebra import Rule
from rules.meta import LayerMeta, OptimizerFamily


def attention_meta(
    head_dim: int,
    base_head_dim: int | None = None,
    *,
    optimizer: OptimizerFamily = "adam",
    path: str = "attention",
    **fields: Any,
) -> LayerMeta:
    """The "attention" pseudo-layer of a head of `head_dim` (None base: d does not scale)."""
    return LayerMeta(
        role="attention",
        fan_in=head_dim,
        fan_out=head_dim,
        base_fan_in=base_head_dim,
        base_fan_out=base_head_dim,
        optimizer=optimizer,
        path=path,
        **fields,
    )


def logit_scale(rule: Rule, head_dim: int, base_head_dim: int | None = None) -> float:
    """The factor on q.k: 1/sqrt(head_dim) times the rule's attention multiplier.

    `mup`: sqrt(base_head_dim) / head_dim; `sp`, `ntk`: 1/sqrt(head_dim).
    """
    meta = attention_meta(head_dim, base_head_dim)
    return rule(meta).multiplier / math.sqrt(head_dim)


def dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    *,
    scale: float,
    bias: Any = None,
    mask: Any = None,
    is_causal: bool = False,
    implementation: str | None = None,
) -> Any:
    """`jax.nn.dot_product_attention` with logits `scale * q.k`.

    Shapes as JAX's: query [batch, q_len, heads, head_dim], key/value [batch, kv_len,
    kv_heads, head_dim]. `implementation=None` lets JAX pick (cuDNN flash kernels on GPU).
    """
    import jax

    return jax.nn.dot_product_attention(
        query,
        key,
        value,
        bias=bias,
        mask=mask,
        scale=scale,
        is_causal=is_causal,
        implementation=implementation,
    )


def attention_fn(scale: float, base: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """An `attention_fn` for flax's multi-head attention whose logits are `scale * q.k`.

    Flax's `dot_product_attention` (`base`, default `flax.nnx.dot_product_attention`; the
    Linen one has the same maths) divides the query by sqrt(head_dim); the query is
    rescaled first so the product is `scale * q.k`. Every other argument passes through.
    """
    if base is None:
        from flax import nnx

        base = nnx.dot_product_attention

    def scaled_attention(query, key, value, *args, **kwargs):
        head_dim = query.shape[-1]
        return base(query * (scale * math.sqrt(head_dim)), key, value, *args, **kwargs)

    scaled_attention.__name__ = f"attention_fn(scale={scale:g})"
    return scaled_attention
