"""Stacked blocks: scanned and unrolled give the same outputs, gradients and state updates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo

CASES = [
    ("cnn1d", (40,), dict(depth=4, normalization="batch", dropout=0.2)),
    ("cnn2d", (8, 8, 1), dict(depth=3, normalization="layer")),
    ("resmlp", (40,), dict(depth=4, normalization="layer", dropout=0.2)),
    # vit shares lm's block (zoo/transformer.py); ~30 s, so slow
    pytest.param(
        "vit",
        (8, 8, 1),
        dict(depth=3, normalization="layer", dropout=0.2, heads=2),
        marks=pytest.mark.slow,
    ),
    ("lm", (6,), dict(depth=3, normalization="rms", dropout=0.2, heads=2, positions="rotary")),
    # ~30 s on a 2-core CPU (building and tracing ResNet blocks), hence slow.
    pytest.param(
        "resnet",
        (8, 8, 1),
        dict(depth=20, normalization="batch", dropout=0.2),
        marks=pytest.mark.slow,
    ),  # fmt: skip
]


def numbers(model):
    """Every state leaf of `model` as a number array (RNG keys as their key data)."""
    leaves = jax.tree.leaves(nnx.state(model))
    return [jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v
            for v in leaves]  # fmt: skip


def build(name, shape, scan, **kw):
    config = zoo.ModelConfig(
        input_shape=shape, num_classes=10, width=8, base_width=4, scan_blocks=scan, **kw
    )
    return zoo.build(name, config, rules.mup, nnx.Rngs(0))


# Compiled: eagerly, every op of a block (and of its gradient) is a program of its own, and
# these compiles were most of this file's time. Train mode's state updates (running
# statistics, RNG counters) come back out of nnx.jit as they do eagerly.
@nnx.jit
def forward(model, x):
    return model(x)


@nnx.jit
def grad_of_mean_square(model, x):
    return nnx.grad(lambda m: (m(x) ** 2).mean())(model)


@jax.jit  # one program: eagerly each op compiles once per parameter shape
def moved(state):
    return jax.tree.map(lambda v: v + 0.01 * jnp.cos(jnp.arange(v.size).reshape(v.shape)), state)


@pytest.mark.parametrize("name, shape, kw", CASES)
def test_scanned_and_unrolled_agree(name, shape, kw):
    scanned, unrolled = build(name, shape, True, **kw), build(name, shape, False, **kw)
    # Same seed, same parameters; make them differ from init so the check is not trivial.
    state = moved(nnx.state(scanned, nnx.Param))
    nnx.update(scanned, state)
    nnx.update(unrolled, state)
    if name == "lm":  # tokens of a vocabulary of 10
        x = jax.random.randint(jax.random.key(1), (6, *shape), 0, 10)
    else:
        x = jax.random.normal(jax.random.key(1), (6, *shape))
    scanned.train(), unrolled.train()
    np.testing.assert_allclose(forward(scanned, x), forward(unrolled, x), rtol=1e-5, atol=1e-5)
    # Train mode updated the same running statistics and RNG counters in both.
    for a, b in zip(numbers(scanned), numbers(unrolled)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    scanned.eval(), unrolled.eval()
    np.testing.assert_allclose(forward(scanned, x), forward(unrolled, x), rtol=1e-5, atol=1e-5)
    grads = [grad_of_mean_square(m, x) for m in (scanned, unrolled)]
    for a, b in zip(*(jax.tree.leaves(g) for g in grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
