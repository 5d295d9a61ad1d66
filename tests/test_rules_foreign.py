"""Rules on Flax models written without `rules`: the CNN of the flax examples, NNX and Linen."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rules
from rules import foreign

IMAGE = jnp.ones((2, 8, 8, 1))


class LinenCNN(linen.Module):
    """Written the way the flax MNIST example writes its CNN, with a width knob."""

    width: int = 32

    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Conv(features=self.width, kernel_size=(3, 3))(x))
        x = linen.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = linen.relu(linen.Conv(features=2 * self.width, kernel_size=(3, 3))(x))
        x = linen.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = linen.relu(linen.Dense(features=8 * self.width)(x))
        return linen.Dense(features=10)(x)


class NNXCNN(nnx.Module):
    """The same CNN as the flax NNX examples write it."""

    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, width, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.LayerNorm(2 * width, rngs=rngs)
        self.linear1 = nnx.Linear(2 * width * 2 * 2, 8 * width, rngs=rngs)
        self.linear2 = nnx.Linear(8 * width, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nnx.relu(self.norm(self.conv2(x)))
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nnx.relu(self.linear1(x.reshape(x.shape[0], -1)))
        return self.linear2(x)


def linen_params(width):
    return LinenCNN(width).init(jax.random.key(0), IMAGE)["params"]


def linen_shapes(width):
    return jax.eval_shape(lambda: LinenCNN(width).init(jax.random.key(0), IMAGE))["params"]


def test_linen_roles_fans_and_reinit():
    params, base = linen_params(64), linen_shapes(16)
    new, scales, metas = foreign.apply_to_linen(
        params, base, rules.mup, jax.random.key(1), optimizer="adam"
    )
    roles = {k: metas[k]["kernel"].role for k in ("Conv_0", "Conv_1", "Dense_0", "Dense_1")}
    want = {"Conv_0": "input", "Conv_1": "hidden", "Dense_0": "hidden", "Dense_1": "output"}
    assert roles == want
    conv = metas["Conv_1"]["kernel"]
    assert (conv.fan_in, conv.base_fan_in, conv.fan_out, conv.base_fan_out) == (
        9 * 64,
        9 * 16,
        128,
        32,
    )
    assert metas["Conv_1"]["bias"].role == "bias"
    # mup at 4x base width with Adam: hidden LR / 4, readout std ~ 1/width.
    assert scales["Dense_0"]["kernel"].lr == pytest.approx(0.25)
    readout = np.asarray(new["Dense_1"]["kernel"])
    assert readout.std() == pytest.approx(np.sqrt(2 / 512) / 2, rel=0.1)
    assert np.all(np.asarray(new["Dense_0"]["bias"]) == 0)
    assert jax.tree.structure(new) == jax.tree.structure(params)

    tx = rules.scaled_optimizer("adam", 1e-3, scales)
    model = LinenCNN(64)

    def loss(p):
        return jnp.mean(model.apply({"params": p}, IMAGE) ** 2)

    grads = jax.grad(loss)(new)
    updates, _ = tx.update(grads, tx.init(new), new)
    assert np.all(np.isfinite(jax.tree.leaves(optax.apply_updates(new, updates))[0]))


def test_nnx_reinit_attaches_metadata_and_trains():
    model = NNXCNN(32, rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXCNN(8, rngs=nnx.Rngs(0)))
    scales = foreign.apply_to_nnx(model, base, rules.mup, jax.random.key(2), optimizer="sgd")
    rows = {r["path"]: r for r in rules.layer_rows(model)}
    assert rows["conv1/kernel"]["role"] == "input" and rows["linear2/kernel"]["role"] == "output"
    assert rows["norm/scale"]["role"] == "norm"
    # SGD muP: input weights and vector parameters x n (n = 4), readout / n.
    assert rows["conv1/kernel"]["lr_multiplier"] == pytest.approx(4.0)
    assert rows["norm/scale"]["lr_multiplier"] == pytest.approx(4.0)
    assert rows["linear2/kernel"]["lr_multiplier"] == pytest.approx(0.25)
    assert np.all(np.asarray(model.norm.scale[...]) == 1.0)
    assert rules.param_scales(model) == scales
    assert model(IMAGE).shape == (2, 10)


def test_overrides_by_path_pattern():
    overrides = {"Dense_1": {"gain": 1.0}, "Conv_0/k": "hidden"}
    metas = foreign.infer_metas(linen_params(32), linen_shapes(16), overrides=overrides)
    assert metas["Dense_1"]["kernel"].gain == 1.0 and metas["Dense_1"]["bias"].gain == 1.0
    assert metas["Conv_0"]["kernel"].role == "hidden"
    assert metas["Conv_0"]["bias"].role == "bias"


def test_foreign_models_cannot_take_branch_rules_or_width_rules_without_base():
    params = linen_params(16)
    with pytest.raises(rules.RuleError, match="residual branches"):
        foreign.apply_to_linen(params, linen_shapes(8), rules.depth_mup, jax.random.key(0))
    with pytest.raises(rules.RuleError, match="base width"):
        foreign.apply_to_linen(params, linen_shapes(16), rules.mup, jax.random.key(0))
    with pytest.raises(ValueError, match="different parameter structure"):
        foreign.infer_metas(params, {"Dense_0": params["Dense_0"]})


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_folded_multiplier_gives_the_same_training(optimizer):
    """abc symmetry: rules.Linear with ntk's multiplier == a plain layer with it folded in."""
    meta = rules.LayerMeta(role="hidden", fan_in=16, fan_out=4, gain=2.0, optimizer=optimizer)
    layer = rules.Linear(meta, rules.ntk, use_bias=False, rngs=nnx.Rngs(0))
    scales = rules.ntk(meta)
    folded = foreign.fold_multiplier(scales, optimizer)
    assert folded.multiplier == 1.0
    w = layer.kernel[...]
    w_folded = w * scales.multiplier
    x = jax.random.normal(jax.random.key(3), (5, 16))
    name = "adam" if optimizer == "adam" else "sgd"

    def run(kernel, s, multiplier):
        tx = rules.scaled_optimizer(name, 0.01, {"k": s}, eps=1e-3)
        params, state = {"k": kernel}, None
        state = tx.init(params)
        for _ in range(3):
            grads = jax.grad(lambda p: jnp.sum(jnp.sin(x @ p["k"] * multiplier)))(params)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return x @ params["k"] * multiplier

    np.testing.assert_allclose(
        run(w, scales, scales.multiplier), run(w_folded, folded, 1.0), rtol=1e-4, atol=1e-6
    )
