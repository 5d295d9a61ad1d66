"""Attention logits under a rule: muP's 1/d against the standard 1/sqrt(d)."""

import math

import numpy as np
import pytest

import rules


@pytest.mark.parametrize("name", ["sp", "ntk", "am_mup"])
def test_rules_without_attention_scaling_keep_one_over_sqrt_d(name):
    rule = rules.get(name)
    assert rules.logit_scale(rule, 64, 16) == pytest.approx(1 / 8)


@pytest.mark.parametrize("name", ["mup", "mean_field", "depth_mup", "completep"])
def test_mup_family_uses_one_over_d_relative_to_the_base(name):
    rule = rules.get(name)
    assert rules.logit_scale(rule, 16, 16) == pytest.approx(1 / 4)  # base: 1/sqrt(d0)
    assert rules.logit_scale(rule, 64, 16) == pytest.approx(math.sqrt(16) / 64)
    assert rules.logit_scale(rule, 256, 16) == pytest.approx(4 / 256)
    # a head_dim that does not scale (no base) keeps the standard scale
    assert rules.logit_scale(rule, 64) == pytest.approx(1 / 8)


def _reference(query, key, value, scale):
    """float64 numpy: softmax(scale q.k) v per batch and head."""
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    logits = scale * np.einsum("bqhd,bkhd->bhqk", q, k)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", weights, v)


def _qkv(seed=0, shape=(2, 5, 3, 8)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(3)]


def test_dot_product_attention_uses_the_scale():
    q, k, v = _qkv()
    out = rules.dot_product_attention(q, k, v, scale=0.05)
    np.testing.assert_allclose(np.asarray(out), _reference(q, k, v, 0.05), atol=1e-5)


def test_attention_fn_gives_flax_attention_the_scale():
    from flax import linen, nnx

    q, k, v = _qkv(1)
    for base in (None, nnx.dot_product_attention, linen.dot_product_attention):
        out = rules.attention_fn(0.03, base)(q, k, v, deterministic=True)
        np.testing.assert_allclose(np.asarray(out), _reference(q, k, v, 0.03), atol=1e-5)


def test_attention_fn_plugs_into_nnx_multi_head_attention():
    from flax import nnx

    scale = rules.logit_scale(rules.mup, 16, 4)
    layer = nnx.MultiHeadAttention(
        num_heads=2,
        in_features=32,
        decode=False,
        attention_fn=rules.attention_fn(scale),
        rngs=nnx.Rngs(0),
    )
    x = np.random.default_rng(2).normal(size=(2, 6, 32)).astype(np.float32)
    out = layer(x, deterministic=True)
    q = np.einsum("bte,ehd->bthd", x, np.asarray(layer.query.kernel.value))
    k = np.einsum("bte,ehd->bthd", x, np.asarray(layer.key.kernel.value))
    v = np.einsum("bte,ehd->bthd", x, np.asarray(layer.value.kernel.value))
    q, k, v = (
        a + np.asarray(lin.bias.value)
        for a, lin in ((q, layer.query), (k, layer.key), (v, layer.value))
    )
    heads = _reference(q, k, v, scale)
    expected = np.einsum("bthd,hde->bte", heads, np.asarray(layer.out.kernel.value))
    expected += np.asarray(layer.out.bias.value)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)
