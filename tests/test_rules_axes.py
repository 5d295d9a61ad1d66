"""Run-level transforms (training length, batch size, weight decay) against their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rules
import zoo
from rules import axes
from rules.axes import Hyper, RunScales, RunShape, compose_run, resolve
from rules.decay import decay_scales
from scaling_training.engine import split_model

BASE = Hyper(lr=3e-3, weight_decay=0.1, beta2=0.999)
ALL = compose_run(
    axes.horizon_lr(0.3),
    axes.batch_lr_by_family,
    axes.beta2_half_life(),
    axes.decay_timescale(),
)


@pytest.mark.parametrize(
    "shape",
    [
        RunShape(steps=1000, batch_size=64),
        RunShape(steps=1000, batch_size=64, base_steps=1000, base_batch_size=64),
        RunShape(steps=7, batch_size=3, optimizer="sgd", weight_decay_mode="independent"),
    ],
)
def test_no_base_or_same_base_is_the_identity_bit_for_bit(shape):
    assert ALL(shape) == RunScales()
    derived = resolve(ALL(shape), BASE)
    assert derived == BASE
    assert all(s.after == s.before for s in ALL.derive(shape))


def test_horizon_lr_is_steps_ratio_to_minus_beta():
    shape = RunShape(steps=8000, batch_size=64, base_steps=1000)
    assert axes.horizon_lr(0.3)(shape, RunScales()).lr == pytest.approx(8**-0.3, rel=1e-12)
    shorter = RunShape(steps=250, batch_size=64, base_steps=1000)
    assert axes.horizon_lr(0.5)(shorter, RunScales()).lr == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("family,power", [("adam", 0.5), ("sgd", 1.0)])
def test_batch_lr_is_sqrt_for_adam_and_linear_for_sgd(family, power):
    shape = RunShape(steps=100, batch_size=512, base_batch_size=64, optimizer=family)
    got = axes.batch_lr_by_family(shape, RunScales(lr=2.0)).lr
    assert got == pytest.approx(2.0 * 8**power, rel=1e-12)
    assert axes.batch_lr(0.25)(shape, RunScales()).lr == pytest.approx(8**0.25, rel=1e-12)


def test_batch_lr_of_an_unknown_family_says_so():
    shape = RunShape(steps=100, batch_size=512, base_batch_size=64, optimizer="muon")
    with pytest.raises(ValueError, match="no batch-size LR scaling is known for the 'muon'"):
        axes.batch_lr_by_family(shape, RunScales())


def test_beta2_keeps_its_token_half_life_and_is_clipped_as_marin_does():
    rule = compose_run(axes.beta2_half_life())
    four = RunShape(steps=100, batch_size=256, base_batch_size=64)
    assert resolve(rule(four), BASE).beta2 == pytest.approx(0.999**4, rel=1e-12)
    # the half-life in examples: ln(1/2) / ln(beta2) steps of B examples each
    half_life = np.log(0.5) / np.log(resolve(rule(four), BASE).beta2) * 256
    assert half_life == pytest.approx(np.log(0.5) / np.log(0.999) * 64, rel=1e-9)
    huge = RunShape(steps=100, batch_size=64 * 100, base_batch_size=64)  # 0.999^100 = 0.905
    assert resolve(rule(huge), BASE).beta2 == 0.95
    tiny = RunShape(steps=100, batch_size=2, base_batch_size=64)  # 0.999^(1/32) = 0.99997
    assert resolve(rule(tiny), BASE).beta2 == 0.9999
    # marin #4567's absolute formula is the relative one with base 0.999 at batch 32
    marin = RunShape(steps=1, batch_size=512, base_batch_size=32)
    want = float(np.clip(0.999 ** (512 / 32), 0.95, 0.9999))
    assert resolve(rule(marin), BASE).beta2 == pytest.approx(want, rel=1e-12)
    # a base beta2 outside the bounds is never pushed to the other side of itself
    low = Hyper(lr=1.0, beta2=0.9)
    assert resolve(rule(RunShape(steps=1, batch_size=2, base_batch_size=1)), low).beta2 == 0.9


@pytest.mark.parametrize("mode", ["coupled", "independent"])
def test_decay_timescale_keeps_the_decay_over_the_run_fixed(mode):
    """Coupled: eta lambda S constant (Power Lines' tau = 1 / (eta lambda S)); independent:
    lambda S constant, whatever the LR transforms before it did."""
    shape = RunShape(
        steps=4000, batch_size=256, base_steps=1000, base_batch_size=64, weight_decay_mode=mode
    )
    target = resolve(ALL(shape), BASE)
    per_step, base_per_step = target.weight_decay, BASE.weight_decay
    if mode == "coupled":
        per_step, base_per_step = per_step * target.lr, base_per_step * BASE.lr
    assert target.lr != BASE.lr
    assert per_step * shape.steps == pytest.approx(base_per_step * 1000, rel=1e-12)


def test_decay_timescale_power_moves_tau_with_tokens():
    shape = RunShape(steps=2000, batch_size=128, base_steps=1000, base_batch_size=64)
    scales = axes.decay_timescale(power=-0.5)(shape, RunScales())
    tau = 1 / (scales.weight_decay * 2.0)  # eta factor 1, steps x 2
    assert tau == pytest.approx(4.0**-0.5, rel=1e-12)  # tokens x 4


def test_derive_names_each_transform_and_its_factor():
    shape = RunShape(steps=8000, batch_size=256, base_steps=1000, base_batch_size=64)
    derivation = ALL.derive(shape)
    assert [s.name for s in derivation] == [
        "horizon_lr(0.3)",
        "batch_lr_by_family",
        "beta2_half_life(0.95,0.9999)",
        "decay_timescale(0)",
    ]
    assert derivation[0].lr_factor == pytest.approx(8**-0.3)
    assert derivation[1].lr_factor == pytest.approx(2.0)
    assert derivation[3].weight_decay_factor == pytest.approx(1 / 8 / (8**-0.3 * 2))
    assert ALL.pipeline.startswith("horizon_lr(0.3) > batch_lr_by_family")
    assert compose_run(name="none").pipeline == "(none)"


def test_run_shape_refuses_nonsense():
    with pytest.raises(ValueError, match="base_steps must be >= 1"):
        RunShape(steps=10, batch_size=1, base_steps=0)
    with pytest.raises(ValueError, match="weight_decay_mode"):
        RunShape(steps=10, batch_size=1, weight_decay_mode="lr")


# -- per-layer width scaling of the decay, and the optimizer's two modes ---------------------


def mlp(width, optimizer="adam"):
    config = zoo.ModelConfig(
        input_shape=(12,), num_classes=3, width=width, depth=3, base_width=32, optimizer=optimizer
    )
    return zoo.build("mlp", config, rules.get("mup"), nnx.Rngs(0))


def _metas_and_scales(model, mode, scaling):
    scales = decay_scales(model, mode, scaling)
    state = nnx.state(model, nnx.Param)
    for path, variable in nnx.to_flat_state(state):
        scale = scales
        for key in path:
            scale = scale[key]
        yield variable.get_metadata()["meta"], scale


def test_coupled_constant_decay_follows_each_layers_lr():
    model = mlp(128)
    seen = set()
    for _, scale in _metas_and_scales(model, "coupled", "constant"):
        assert scale.weight_decay == scale.lr
        seen.add(scale.weight_decay)
    assert seen == {1.0, 0.25}  # input and biases x 1; hidden and readout x 1/n, n = 4


def test_independent_inverse_width_decay_is_one_over_fan_in_growth():
    for meta, scale in _metas_and_scales(mlp(128), "independent", "inverse_width"):
        want = 1 / meta.fan_in_multiplier if meta.is_weight else 1.0
        assert scale.weight_decay == want
        assert scale.lr == rules.get("mup")(meta).lr  # the LR untouched


@pytest.mark.parametrize("mode,scaling", [("coupled", "completep"), ("independent", "constant")])
def test_the_native_scalings_leave_the_models_scales(mode, scaling):
    model = mlp(128)
    assert decay_scales(model, mode, scaling) == rules.param_scales(model)


@pytest.mark.parametrize(
    "mode,scaling", [("coupled", "inverse_width"), ("independent", "completep"), ("x", "constant")]
)
def test_a_scaling_that_does_not_belong_to_the_mode_is_refused(mode, scaling):
    with pytest.raises(ValueError):
        axes.decay_width_transform(mode, scaling)


@pytest.mark.parametrize("mode", ["coupled", "independent"])
def test_one_step_decays_by_the_modes_formula(mode):
    """Zero gradients: SGD's step is the decay alone. Coupled: p x (1 - lr wd s.wd);
    independent: p x (1 - wd s.wd), whatever the LR."""
    model = mlp(128, optimizer="sgd")
    _, params, _ = split_model(model)
    scaling = "constant" if mode == "coupled" else "inverse_width"
    scales = decay_scales(model, mode, scaling)
    lr, wd = 0.05, 0.3
    tx = rules.optimizer("sgd", lr, scales, weight_decay=wd, weight_decay_mode=mode)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    factors = jax.tree.map(
        lambda s: s.weight_decay, scales, is_leaf=lambda x: isinstance(x, rules.Scales)
    )
    per_step = lr * wd if mode == "coupled" else wd
    assert len(jax.tree.leaves(factors)) == len(jax.tree.leaves(params)) > 3
    leaves = zip(jax.tree.leaves(params), jax.tree.leaves(new), jax.tree.leaves(factors))
    for old, moved, factor in leaves:
        np.testing.assert_allclose(moved, old * (1 - per_step * factor), rtol=1e-6)
    # SGD muP LRs: input and biases x n, hidden x 1, readout x 1/n (n = 4)
    want = {4.0, 1.0, 0.25} if mode == "coupled" else {1.0, 0.25}
    assert {float(f) for f in jax.tree.leaves(factors)} == want
