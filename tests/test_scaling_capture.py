"""Stacked (scanned) layers are captured one entry per layer, as an unrolled model sees them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo
from scaling.capture import make_preactivations
from scaling.coord import trajectory
from scaling.setup import normalized_inputs
from scaling.update import update_sizes


def cnn(depth, scan=True):
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=8, depth=depth,
                             base_width=4, scan_blocks=scan)  # fmt: skip
    return zoo.build("cnn1d", config, rules.am_mup, nnx.Rngs(0))


def unrolled_preactivations(graphdef, params, rest, x):
    """Each layer's pre-activation computed block by block in Python, without sowing."""
    model = nnx.merge(graphdef, params, rest)
    x = x.reshape(x.shape[0], -1, 1)
    out = {"input/conv": model.input.conv(x)}
    h = model.input(x)
    blocks_def, blocks = nnx.split(model.hidden)
    count = jax.tree.leaves(blocks)[0].shape[0]
    for k in range(count):
        block = nnx.merge(blocks_def, jax.tree.map(lambda v, k=k: v[k], blocks))
        out[f"hidden/conv/{k}"] = block.conv(h)
        h = block(h)
    out["output"] = model.output(h.mean(axis=1))
    return out


def reference_update_sizes(model, x, y):
    """C_l = mean(dz_l^2) / eta^2 of one SGD step with the rule's LRs, from the unrolled path."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = nnx.to_pure_dict(params)

    def forward(p):
        state = nnx.State(p)
        return unrolled_preactivations(graphdef, state, rest, x)

    def loss(p):
        return 0.5 * jnp.sum((forward(p)["output"] - y) ** 2)

    grads = jax.grad(loss)(params)
    direction = jax.tree.map(lambda g, m: -m * g, grads, rules.lr_multipliers(model))
    _, changes = jax.jvp(forward, (params,), (direction,))
    return {k: float(jnp.mean(v**2)) for k, v in changes.items()}


def test_scanned_stack_splits_into_layers_matching_an_unrolled_reference():
    model = cnn(depth=5)
    x, y = normalized_inputs((40,), 1, 1), jax.random.normal(jax.random.key(2), (1, 10))
    measured, reference = update_sizes(model, x, y), reference_update_sizes(model, x, y)
    assert set(measured) == set(reference) == {
        "input/conv", "hidden/conv/0", "hidden/conv/1", "hidden/conv/2", "hidden/conv/3", "output"
    }  # fmt: skip
    for layer in reference:
        assert measured[layer] == pytest.approx(reference[layer], rel=1e-4), layer
    # The layers differ, so a max or mean over one stacked entry would have been wrong.
    hidden = [measured[f"hidden/conv/{k}"] for k in range(4)]
    assert max(hidden) > 1.5 * min(hidden)


def test_scanned_and_unrolled_models_capture_the_same_layers():
    x = normalized_inputs((40,), 2, 3)
    scanned, unrolled = (make_preactivations(cnn(4, scan)) for scan in (True, False))
    a, b = scanned[0](scanned[1], x)[1], unrolled[0](unrolled[1], x)[1]
    assert set(a) == set(b) and len(a) == 5
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_number_of_entries_grows_with_depth_in_update_and_coord():
    x, y = normalized_inputs((40,), 1, 1), jax.random.normal(jax.random.key(2), (1, 10))
    # depths 4 and 5, as in the tests above: their models' programs are compiled already
    assert len(update_sizes(cnn(4), x, y)) == 5 and len(update_sizes(cnn(5), x, y)) == 6
    labels = jnp.zeros((4,), jnp.int32)
    layers = trajectory(cnn(4), normalized_inputs((40,), 4, 0), labels, "sgd", 0.01, 1)["layers"]
    assert layers == ["input/conv", "hidden/conv/0", "hidden/conv/1", "hidden/conv/2", "output"]
