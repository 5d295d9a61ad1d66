"""cnn1d and cnn2d: shapes, parameter counts, rule metadata on every parameter."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import rules
import zoo


def build(name, shape, **kw):
    config = zoo.ModelConfig(input_shape=shape, num_classes=10, base_width=4, **kw)
    return zoo.build(name, config, rules.mup, nnx.Rngs(0))


def shapes_only(name, shape, **kw):
    """The model with abstract parameters (shapes and metadata, no compiled init: fast)."""
    return nnx.eval_shape(lambda: build(name, shape, **kw))


def output_shape(name, shape, **kw):
    x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
    return jax.eval_shape(lambda x: build(name, shape, **kw)(x), x).shape


def count(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("depth", [1, 3])
def test_cnn1d_shape_and_parameter_count(depth):
    c, k = 8, 5
    kw = dict(width=c, depth=depth, kernel_size=k, normalization="batch")
    assert output_shape("cnn1d", (40,), **kw) == (3, 10)
    model = shapes_only("cnn1d", (40,), **kw)
    convs = (k * 1 * c + c) + (depth - 1) * (k * c * c + c)
    norms = depth * 2 * c
    assert count(model) == convs + norms + (c * 10 + 10)


def test_cnn2d_shape_and_parameter_count_without_bias():
    c, k, depth = 8, 3, 3
    kw = dict(width=c, depth=depth, kernel_size=k, use_bias=False)
    assert output_shape("cnn2d", (8, 8, 1), **kw) == (3, 10)
    model = shapes_only("cnn2d", (8, 8, 1), **kw)
    assert count(model) == k * k * 1 * c + (depth - 1) * k * k * c * c + c * 10


@pytest.mark.parametrize(
    "padding, activation",
    [("SAME", "relu"), ("CIRCULAR", "gelu"), ("SAME", "tanh"), ("CIRCULAR", "linear")],
)
def test_options_run(padding, activation):
    model = build("cnn1d", (40,), width=8, depth=2, padding=padding, activation=activation,
                  normalization="layer", dropout=0.1)  # fmt: skip
    assert jnp.all(jnp.isfinite(model(jnp.ones((2, 40)))))


def test_every_parameter_carries_rule_metadata():
    model = build("cnn2d", (8, 8, 1), width=8, depth=2, normalization="batch")
    roles = {row["path"]: row["role"] for row in rules.layer_rows(model)}
    assert "-" not in roles.values()
    assert roles["input/conv/kernel"] == "input" and roles["output/kernel"] == "output"
    assert roles["hidden/conv/kernel"] == "hidden" and roles["hidden/norm/scale"] == "norm"
    assert float(model.input.norm.scale[...].min()) == 1.0  # norm scale starts at 1
    assert model.hidden.conv.kernel.meta.fan_in == 8 * 9  # channels x receptive field


def test_cnn2d_rejects_1d_inputs():
    with pytest.raises(ValueError, match="2-d inputs"):
        build("cnn2d", (40,), width=8, depth=2)
