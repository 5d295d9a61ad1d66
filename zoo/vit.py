"""`vit`: a vision transformer over the image sets (and MNIST-1D as a 1D sequence).

image -> non-overlapping patches -> patch embedding (role input, fan_in = patch pixels) ->
[class token] + learned positions (or rotary in every block) -> K pre-LN blocks, not
causal (the same `TransformerBlock` as `lm`) -> norm -> class token or mean over patches
-> linear readout (role output). `depth` counts the transformer blocks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from rules import Linear, Rule
from zoo.config import ModelConfig
from zoo.optional import Identity
from zoo.roles import input_meta, output_meta
from zoo.transformer import Embedding, Positions, Trunk


def patch_grid(input_shape: tuple[int, ...], patch_size: int) -> tuple[int, int, int]:
    """(patch size, number of patches, values per patch) for an image [H, W, C] or a
    sequence [L] / [L, C]. patch_size 0: a 4x4 grid of patches (images), 8 (sequences).
    ValueError when the patches do not tile the input."""
    spatial = input_shape[:2] if len(input_shape) == 3 else input_shape[:1]
    channels = input_shape[2] if len(input_shape) == 3 else math.prod(input_shape[1:])
    if len(input_shape) not in (1, 2, 3):
        raise ValueError(f"vit reads images [H, W, C] or sequences [L], got {input_shape}")
    size = patch_size or max(1, spatial[0] // (4 if len(spatial) == 2 else 8))
    if any(side % size for side in spatial):
        raise ValueError(
            f"patch size {size} does not tile the input {'x'.join(map(str, spatial))}; "
            "pick a divisor with --patch_size"
        )
    count = math.prod(side // size for side in spatial)
    return size, count, size ** len(spatial) * channels


def to_patches(x: jax.Array, size: int, spatial_dims: int) -> jax.Array:
    """[B, H, W, C] -> [B, H/p x W/p, p x p x C] (row-major grid); [B, L(, C)] -> [B, L/p, p C]."""
    batch = x.shape[0]
    if spatial_dims == 1:
        return x.reshape(batch, x.shape[1] // size, -1)
    _, height, width, channels = x.shape
    x = x.reshape(batch, height // size, size, width // size, size, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, -1, size * size * channels)


class ClassToken(Embedding):
    """One learned row, put before the patches: [batch, count, width] -> [.., count + 1, ..]."""

    def __call__(self, h: jax.Array) -> jax.Array:
        token = jnp.broadcast_to(self.rows(1), (h.shape[0], 1, h.shape[2]))
        return jnp.concatenate([token, h], axis=1)


class ViT(nnx.Module):
    """Vision transformer: x [batch, *input_shape] -> logits [batch, num_classes]."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        c = config
        self.patch, count, patch_values = patch_grid(c.input_shape, c.patch_size)
        self.spatial_dims = 2 if len(c.input_shape) == 3 else 1
        self.input = Linear(input_meta(c, patch_values), rule, use_bias=c.use_bias, rngs=rngs)
        self.cls = c.pooling == "cls"
        self.cls_token = ClassToken(c, rule, 1, rngs=rngs) if self.cls else Identity()
        learned = c.positions == "learned"  # else rotary, inside the blocks
        self.positions = Positions(c, rule, count + self.cls, rngs=rngs) if learned else Identity()
        self.trunk = Trunk(c, rule, causal=False, rngs=rngs)
        # The readout reads the stream (or its norm), a sum of pre-activations: gain 1.
        self.output = Linear(
            output_meta(c, c.width, gain=1.0), rule, use_bias=c.use_bias, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.input(to_patches(x, self.patch, self.spatial_dims))
        h = self.trunk(self.positions(self.cls_token(h)))
        return self.output(h[:, 0] if self.cls else h.mean(axis=1))
