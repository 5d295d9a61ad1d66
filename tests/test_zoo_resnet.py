"""resnet and resmlp: shapes, parameter counts, depth checks, residual metadata."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import rules
import zoo


def build(name, shape, rule=rules.mup, **kw):
    config = zoo.ModelConfig(input_shape=shape, num_classes=10, base_width=4, **kw)
    return zoo.build(name, config, rule, nnx.Rngs(0))


def shapes_only(name, shape, **kw):
    """The model with abstract parameters (shapes and metadata, no compiled init: fast)."""
    return nnx.eval_shape(lambda: build(name, shape, **kw))


def output_shape(name, shape, **kw):
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    return jax.eval_shape(lambda x: build(name, shape, **kw)(x), x).shape


def count(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def resnet_count(n: int, w: int) -> int:
    """Pre-activation ResNet-(6n+2), 3x3 convs, no biases, BatchNorm (scale + bias)."""

    def block(c_in, c_out):
        projection = c_in * c_out if c_in != c_out else 0
        return 9 * c_in * c_out + 9 * c_out * c_out + 2 * c_in + 2 * c_out + projection

    stages = n * block(w, w) + block(w, 2 * w) + (n - 1) * block(2 * w, 2 * w)
    stages += block(2 * w, 4 * w) + (n - 1) * block(4 * w, 4 * w)
    return 9 * 1 * w + stages + 2 * 4 * w + 4 * w * 10


def test_resnet_shape_and_parameter_count():
    kw = dict(width=8, depth=20, use_bias=False, normalization="batch")
    assert output_shape("resnet", (8, 8, 1), **kw) == (2, 10)
    assert count(shapes_only("resnet", (8, 8, 1), **kw)) == resnet_count(3, 8)


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match=r"6n\+2 \(8, 14, 20, 26, 32"):
        build("resnet", (8, 8, 1), width=8, depth=30)


def test_resmlp_shape_and_parameter_count():
    w, k = 8, 3
    model = shapes_only("resmlp", (40,), width=w, depth=k, normalization="layer")
    assert output_shape("resmlp", (40,), width=w, depth=k) == (2, 10)
    per_block = 2 * (w * w + w) + 2 * w
    assert count(model) == (40 * w + w) + k * per_block + 2 * w + (w * 10 + 10)


def test_residual_layers_describe_their_blocks():
    model = shapes_only("resnet", (8, 8, 1), width=8, depth=20, base_depth=8)
    stacked = model.stages[1][1].conv1.kernel.meta
    assert stacked.in_residual_branch and stacked.block is None
    assert (stacked.num_blocks, stacked.depth, stacked.base_depth) == (9, 9, 3)
    first = model.stages[1][0]
    assert first.conv1.kernel.meta.block == 3
    assert not first.shortcut.kernel.meta.in_residual_branch
    assert (
        model.input.kernel.meta.role == "input" and not model.input.kernel.meta.in_residual_branch
    )


def test_residual_multiplier_comes_from_the_rule():
    def half_branch(meta, scales):
        return scales.replace(multiplier=0.5) if meta.role == "branch" else scales

    rule = rules.compose(rules.mup, half_branch, name="half_branch")
    model = build("resmlp", (40,), rule=rule, width=8, depth=2)
    plain = build("resmlp", (40,), width=8, depth=2)
    assert model.blocks.residual_multiplier == 0.5 and plain.blocks.residual_multiplier == 1.0
    x = jnp.ones((2, 40))
    assert not jnp.allclose(model(x), plain(x))  # the multiplier is applied
