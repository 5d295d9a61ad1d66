"""The MLP: shapes, parameter count, and that its layers take the rule's scales."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo


def build(width=64, depth=3, use_bias=True, rule="mup", input_shape=(40,), **kw):
    config = zoo.ModelConfig(
        input_shape=input_shape,
        num_classes=10,
        width=width,
        depth=depth,
        base_width=16,
        use_bias=use_bias,
        **kw,
    )
    return zoo.build("mlp", config, rules.get(rule), nnx.Rngs(0))


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_shape_and_parameter_count(depth, use_bias):
    model = build(width=32, depth=depth, use_bias=use_bias)
    assert model(jnp.ones((7, 40))).shape == (7, 10)
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    weights = 40 * 32 + (depth - 1) * 32 * 32 + 32 * 10
    biases = (32 * depth + 10) if use_bias else 0
    assert count == weights + biases


def test_flattens_image_inputs():
    model = build(input_shape=(8, 8, 1))
    assert model(jnp.ones((3, 8, 8, 1))).shape == (3, 10)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "linear"])
def test_activations_run(activation):
    out = build(activation=activation)(jnp.ones((2, 40)))
    assert np.all(np.isfinite(out))


def test_init_std_follows_the_rule():
    model = build(width=1024, rule="mup")
    hidden = np.asarray(model.hidden[0].kernel[...])
    readout = np.asarray(model.output.kernel[...])
    assert hidden.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.02)
    assert readout.std() == pytest.approx(np.sqrt(2 / 1024) / np.sqrt(1024 / 16), rel=0.05)
    assert np.all(np.asarray(model.input.bias[...]) == 0)


def test_same_seed_same_model():
    a, b = build(), build()
    for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b))):
        np.testing.assert_array_equal(x, y)


def test_unknown_model_and_bad_config():
    config = zoo.ModelConfig(input_shape=(4,), num_classes=2)
    with pytest.raises(ValueError, match="choose one of: .*mlp"):
        zoo.build("transformer", config, rules.sp, nnx.Rngs(0))
    with pytest.raises(ValueError, match="base_width"):
        zoo.ModelConfig(input_shape=(4,), num_classes=2, width=8, base_width=16).validate()
    with pytest.raises(ValueError, match="unknown activation"):
        zoo.ModelConfig(input_shape=(4,), num_classes=2, activation="swish").validate()


@pytest.mark.parametrize("normalization", ["batch", "layer"])
def test_normalization_and_dropout(normalization):
    model = build(width=32, depth=3, normalization=normalization, dropout=0.5)
    rows = {r["path"]: r for r in rules.layer_rows(model)}
    assert rows["norms/0/scale"]["role"] == "norm" and len(model.norms) == 3
    x = jax.random.normal(jax.random.key(0), (16, 40))
    model.train()
    a, b = model(x), model(x)
    assert not np.allclose(a, b)  # dropout draws new masks in training
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))
