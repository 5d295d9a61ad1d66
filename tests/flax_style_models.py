"""Models written the way Flax projects write them (not with `rules` layers), with width
knobs, for the tests of `rules.parametrize`: a Linen CNN (the mnist example's shape), an
NNX CNN with BatchNorm and Dropout, a Linen transformer LM with DenseGeneral attention and
logical axis names (lm1b's style), and an NNX transformer on nnx.MultiHeadAttention.

Each transformer takes `attention_scale` (the factor on q.k) and `residual_multiplier` (the
factor on each residual branch's output), which a rule decides (`rules.logit_scale`,
`Parametrization.residual_multiplier`).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

import rules

IMAGE = jnp.ones((2, 8, 8, 1))
TOKENS = jnp.zeros((2, 6), jnp.int32)
VOCAB = 11


class LinenCNN(nn.Module):
    width: int = 32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(features=self.width, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(features=2 * self.width, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(features=8 * self.width)(x))
        return nn.Dense(features=10)(x)


class NNXCNN(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, width, kernel_size=(3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(width, rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(2 * width, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.linear1 = nnx.Linear(2 * width * 2 * 2, 8 * width, rngs=rngs)
        self.linear2 = nnx.Linear(8 * width, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.bn1(self.conv1(x))), window_shape=(2, 2), strides=(2, 2))
        x = nnx.avg_pool(nnx.relu(self.bn2(self.conv2(x))), window_shape=(2, 2), strides=(2, 2))
        x = self.dropout(x.reshape(x.shape[0], -1))
        return self.linear2(nnx.relu(self.linear1(x)))


def _partitioned(names):
    return nn.with_logical_partitioning(nn.initializers.lecun_normal(), names)


class LinenAttention(nn.Module):
    heads: int
    head_dim: int
    scale: float

    @nn.compact
    def __call__(self, x):
        d_model = x.shape[-1]
        project = dict(features=(self.heads, self.head_dim), axis=-1)
        names = ("embed", "heads", "kv")
        q, k, v = (
            nn.DenseGeneral(**project, kernel_init=_partitioned(names), name=name)(x)
            for name in ("query", "key", "value")
        )
        y = rules.dot_product_attention(q, k, v, scale=self.scale, is_causal=True)
        return nn.DenseGeneral(
            d_model, axis=(-2, -1), kernel_init=_partitioned(("heads", "kv", "embed")), name="out"
        )(y)


class LinenBlock(nn.Module):
    heads: int
    head_dim: int
    mlp_dim: int
    scale: float
    residual_multiplier: float

    @nn.compact
    def __call__(self, x):
        norm = dict(scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)))
        h = nn.LayerNorm(**norm)(x)
        x = x + self.residual_multiplier * LinenAttention(self.heads, self.head_dim, self.scale)(h)
        h = nn.LayerNorm(**norm)(x)
        h = nn.gelu(nn.Dense(self.mlp_dim, kernel_init=_partitioned(("embed", "mlp")))(h))
        h = nn.Dense(x.shape[-1], kernel_init=_partitioned(("mlp", "embed")))(h)
        return x + self.residual_multiplier * h


class LinenLM(nn.Module):
    d_model: int = 32
    heads: int = 2
    head_dim: int = 16
    depth: int = 2
    attention_scale: float = 0.25
    residual_multiplier: float = 1.0

    @nn.compact
    def __call__(self, tokens):
        embed = nn.Embed(
            VOCAB,
            self.d_model,
            embedding_init=nn.with_logical_partitioning(
                nn.initializers.normal(1.0), ("vocab", "embed")
            ),
        )
        x = embed(tokens)
        for _ in range(self.depth):
            x = LinenBlock(
                self.heads,
                self.head_dim,
                4 * self.d_model,
                self.attention_scale,
                self.residual_multiplier,
            )(x)
        x = nn.LayerNorm()(x)
        return nn.Dense(VOCAB, kernel_init=_partitioned(("embed", "vocab")), name="logits")(x)


class NNXBlock(nnx.Module):
    def __init__(self, d_model, heads, head_dim, scale, residual_multiplier, *, rngs):
        self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads,
            in_features=d_model,
            qkv_features=heads * head_dim,
            attention_fn=rules.attention_fn(scale),
            decode=False,
            rngs=rngs,
        )
        self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.mlp_in = nnx.Linear(d_model, 4 * d_model, rngs=rngs)
        self.mlp_out = nnx.Linear(4 * d_model, d_model, rngs=rngs)
        self.residual_multiplier = residual_multiplier

    def __call__(self, x, mask):
        x = x + self.residual_multiplier * self.attention(self.norm1(x), mask=mask)
        h = self.mlp_out(nnx.gelu(self.mlp_in(self.norm2(x))))
        return x + self.residual_multiplier * h


class NNXLM(nnx.Module):
    def __init__(
        self,
        d_model=32,
        heads=2,
        head_dim=16,
        depth=2,
        attention_scale=0.25,
        residual_multiplier=1.0,
        *,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(VOCAB, d_model, rngs=rngs)
        self.blocks = nnx.List(
            [
                NNXBlock(d_model, heads, head_dim, attention_scale, residual_multiplier, rngs=rngs)
                for _ in range(depth)
            ]
        )
        self.norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.logits = nnx.Linear(d_model, VOCAB, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.logits(self.norm(x))


def linen_init(model: nn.Module, example, key=None):
    """The params collection of `model` (abstract when `key` is None)."""
    if key is None:
        return jax.eval_shape(lambda: model.init(jax.random.key(0), example))["params"]
    return _compiled_init(model, key, example)["params"]


# One program per model (Linen modules hash by their fields): the eager init compiles op by
# op, and a fresh jax.jit(model.init) per call would compile the same model again.
@functools.partial(jax.jit, static_argnums=0)
def _compiled_init(model: nn.Module, key, example):
    return model.init(key, example)


# GPT-2 as small NNX codebases write it (N(0, 0.02) everywhere, the residual projections
# N(0, 0.02 / sqrt(2 depth)), learned positions as a bare Param), optionally with the
# readout tied to the token table; and a big_vision-style ViT in Linen (zero head, zero
# class token, N(0, 0.02) position embedding, xavier kernels, boxed MLP kernels).
GPT_VOCAB = 64
GPT_CONTEXT = 16
GPT_HEAD_DIM = 16


class GPTBlock(nnx.Module):
    def __init__(self, d_model: int, depth: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        projection = nnx.initializers.normal(0.02 / (2 * depth) ** 0.5)
        self.ln_1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=d_model // GPT_HEAD_DIM,
            in_features=d_model,
            kernel_init=init,
            out_kernel_init=projection,
            decode=False,
            rngs=rngs,
        )
        self.ln_2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.c_fc = nnx.Linear(d_model, 4 * d_model, kernel_init=init, rngs=rngs)
        self.c_proj = nnx.Linear(4 * d_model, d_model, kernel_init=projection, rngs=rngs)

    def __call__(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask=mask)
        return x + self.c_proj(nnx.gelu(self.c_fc(self.ln_2(x))))


class GPT(nnx.Module):
    """tokens (batch, length) -> logits (batch, length, GPT_VOCAB). `tied`: the readout is
    the token table, logits = readout_multiplier x h @ wte^T."""

    def __init__(
        self,
        d_model: int,
        depth: int = 2,
        *,
        tied: bool = False,
        readout_multiplier: float = 1.0,
        rngs: nnx.Rngs,
    ):
        init = nnx.initializers.normal(0.02)
        self.wte = nnx.Embed(GPT_VOCAB, d_model, embedding_init=init, rngs=rngs)
        self.wpe = nnx.Param(init(rngs.params(), (GPT_CONTEXT, d_model)))
        self.blocks = nnx.List([GPTBlock(d_model, depth, rngs=rngs) for _ in range(depth)])
        self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)
        self.tied = tied
        if tied:
            self.readout_multiplier = readout_multiplier
        else:
            self.lm_head = nnx.Linear(
                d_model, GPT_VOCAB, use_bias=False, kernel_init=init, rngs=rngs
            )

    def __call__(self, tokens):
        x = self.wte(tokens) + self.wpe[...][: tokens.shape[1]]
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln_f(x)
        if self.tied:
            return self.readout_multiplier * (x @ self.wte.embedding[...].T)
        return self.lm_head(x)


class ViTMlp(nn.Module):
    mlp_dim: int

    @nn.compact
    def __call__(self, x):
        d_model, tiny = x.shape[-1], nn.initializers.normal(1e-6)
        kernel = nn.with_logical_partitioning(nn.initializers.xavier_uniform(), ("embed", "mlp"))
        x = nn.gelu(nn.Dense(self.mlp_dim, kernel_init=kernel, bias_init=tiny)(x))
        kernel = nn.with_logical_partitioning(nn.initializers.xavier_uniform(), ("mlp", "embed"))
        return nn.Dense(d_model, kernel_init=kernel, bias_init=tiny)(x)


class ViTBlock(nn.Module):
    heads: int

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=self.heads, kernel_init=nn.initializers.xavier_uniform()
        )
        x = x + attention(y, y)
        return x + ViTMlp(4 * x.shape[-1])(nn.LayerNorm()(x))


class LinenViT(nn.Module):
    width: int
    depth: int = 2
    patch: int = 4
    num_classes: int = 10

    @nn.compact
    def __call__(self, image):
        p = self.patch
        x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", name="embedding")(image)
        n, h, w, c = x.shape
        x = x.reshape(n, h * w, c)
        x = x + self.param("pos_embedding", nn.initializers.normal(0.02), (1, h * w, c))
        cls = self.param("cls", nn.initializers.zeros, (1, 1, c))
        x = jnp.concatenate([jnp.tile(cls, (n, 1, 1)), x], axis=1)
        for i in range(self.depth):
            x = ViTBlock(c // 8, name=f"encoderblock_{i}")(x)
        x = nn.LayerNorm(name="encoder_norm")(x)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head")(x[:, 0])
