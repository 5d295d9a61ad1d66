"""The muon family: which parameters Muon takes, their LR multipliers, scaled once."""

import dataclasses
import math

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from optax.contrib._muon import orthogonalize_via_newton_schulz

import rules
import zoo
from rules import muon_family
from rules.muon import matrix_axes
from rules.muon_family import MuonScales
from scaling_training.engine import split_model

NS_COEFFS = jnp.asarray((3.4445, -4.7750, 2.0315))


def meta(role, fan_in, fan_out, base_in=None, base_out=None, optimizer="muon"):
    return rules.LayerMeta(
        role=role,
        fan_in=fan_in,
        fan_out=fan_out,
        base_fan_in=base_in,
        base_fan_out=base_out,
        optimizer=optimizer,
    )


def mlp(rule, width=256, optimizer="muon", base=64):
    config = zoo.ModelConfig(
        input_shape=(12,), num_classes=3, width=width, depth=3, base_width=base, optimizer=optimizer
    )
    return zoo.build("mlp", config, rules.get(rule), nnx.Rngs(0))


def test_multipliers_against_formulas():
    hidden = meta("hidden", 256, 1024, 64, 128)  # n_in = 4, n_out = 8
    assert muon_family.takes(hidden)
    assert rules.mup(hidden).lr == pytest.approx(math.sqrt(8 / 4))  # spectral condition
    assert rules.sp(hidden).lr == 1.0
    naive = rules.get("mup_naive_spectral")(hidden).lr
    assert naive == pytest.approx(math.sqrt(max(256, 1024) / max(64, 128)))
    assert muon_family.base_factor(hidden) == pytest.approx(0.2 * math.sqrt(128))
    square = meta("hidden", 512, 512, 64, 64)
    assert rules.mup(square).lr == 1.0  # not Adam's 1/8
    assert rules.get("mup_naive_spectral")(square).lr == pytest.approx(math.sqrt(8))
    # Everything else follows the rule's Adam column exactly.
    for role, fi, fo, bi, bo in [
        ("input", 12, 512, None, 64),
        ("output", 512, 3, 64, None),
        ("bias", 1, 512, None, 64),
        ("norm", 1, 512, None, 64),
    ]:
        m = meta(role, fi, fo, bi, bo)
        assert not muon_family.takes(m)
        adam = dataclasses.replace(m, optimizer="adam")
        for rule in (rules.mup, rules.sp, rules.completep, rules.mean_field):
            assert rule(m) == rule(adam), (role, rule.name)


def test_depth_rules_give_muon_adams_exponent_and_no_epsilon():
    branch = dataclasses.replace(
        meta("hidden", 256, 256, 64, 64), depth=16, base_depth=4, in_residual_branch=True
    )
    scales = rules.completep_alpha(0.5)(branch)
    assert scales.lr == pytest.approx((16 / 4) ** (0.5 - 1))  # (L/L0)^(alpha - 1), as Adam
    assert scales.adam_eps == 1.0  # completep's eps rule skips Muon matrices
    rules.check(rules.completep, [branch])


def test_mup_equals_sp_at_the_base_width_under_muon():
    a, b = mlp("mup", width=64), mlp("sp", width=64)
    assert rules.param_scales(a) == rules.param_scales(b)
    # Muon's matrix axes come from shapes, which an abstract model has too
    abstract = nnx.eval_shape(lambda: mlp("mup", width=64))
    assert rules.param_scales(abstract) == rules.param_scales(a)


def test_a_hidden_matrix_is_scaled_exactly_once():
    """One step: dW = -lr x 0.2 sqrt(64) x NS(g) for a 256x256 hidden matrix at base 64 (no
    Adam 1/n on top), and the readout gets Adam's step x its muP multiplier 1/4."""
    model = mlp("mup", width=256)
    graphdef, params, rest = split_model(model)
    lr = 0.01
    tx = rules.optimizer("muon", lr, model)
    x = jax.random.normal(jax.random.key(1), (16, 12))
    grads = jax.jit(jax.grad(lambda p: jnp.mean(nnx.merge(graphdef, p, rest)(x) ** 2)))(params)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)  # one program, not op by op
    g = grads["hidden"][0]["kernel"]
    want = -lr * 0.2 * math.sqrt(64) * orthogonalize_via_newton_schulz(g, NS_COEFFS, 5)
    np.testing.assert_allclose(updates["hidden"][0]["kernel"], want, rtol=2e-4, atol=1e-7)
    spectral = np.linalg.norm(np.asarray(updates["hidden"][0]["kernel"]), 2)
    assert 0.6 * 1.6 * lr < spectral < 1.25 * 1.6 * lr  # NS: singular values near 1
    out = updates["output"]["kernel"]
    sign = -lr * 0.25 * jnp.sign(grads["output"]["kernel"])  # Adam's first step: g / |g|
    np.testing.assert_allclose(out, sign, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(
    "shape, fans, axes",
    [
        ((3, 3, 8, 16), (72, 16), ((-4, -3, -2), (-1,))),  # conv: (k x k x c_in, c_out)
        ((4, 32, 64), (32, 64), ((-2,), (-1,))),  # 4 stacked blocks
        ((32, 2, 16), (32, 32), ((-3,), (-2, -1))),  # DenseGeneral q: (d, heads, head_dim)
        ((2, 16, 32), (32, 32), ((-3, -2), (-1,))),  # DenseGeneral out
    ],
)
def test_matrix_axes_and_orthogonalisation_against_optax(shape, fans, axes):
    m = meta("hidden", *fans, fans[0] // 2, fans[1] // 2)
    assert matrix_axes("w", shape, m) == axes
    g = jax.random.normal(jax.random.key(0), shape)
    scales = {"w": MuonScales(matrix=axes, base=1.0)}
    tx = rules.optimizer("muon", 1.0, scales)
    update = -tx.update({"w": g}, tx.init({"w": g}), {"w": g})[0]["w"]
    ins, outs = axes
    batch = tuple(a for a in range(-len(shape), 0) if a not in ins + outs)
    moved = jnp.moveaxis(g, batch + ins + outs, tuple(range(len(shape))))
    lead = math.prod(shape[a] for a in batch)
    mats = moved.reshape(lead, fans[0], fans[1])
    for k in range(lead):
        want = orthogonalize_via_newton_schulz(mats[k], NS_COEFFS, 5)
        got = jnp.moveaxis(update, batch + ins + outs, tuple(range(len(shape))))
        got = got.reshape(lead, fans[0], fans[1])[k]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        s = np.linalg.svd(np.asarray(got), compute_uv=False)
        assert s.max() < 1.25 and s.min() > 0.5  # orthogonalised: U S' V^T, S' near 1


def test_shapes_muon_cannot_take_are_one_line_errors():
    m = meta("hidden", 32, 32, 16, 16)
    with pytest.raises(rules.RuleError, match="Muon updates hidden matrices"):
        matrix_axes("bias_like", (32,), m)
    with pytest.raises(rules.RuleError, match="cannot read"):
        matrix_axes("odd", (16, 3, 5), m)


def test_a_rule_that_cannot_be_stated_for_muon_is_refused():
    def adam_only_lr(meta, scales):  # SGD and Adam columns, Muon treated as Adam
        if meta.optimizer != "sgd" and meta.role == "hidden":
            return scales.replace(lr=scales.lr / meta.fan_in_multiplier)
        return scales

    bad = rules.compose(rules.he_init, adam_only_lr, name="adam_only")
    metas = [meta("hidden", 256, 256, 64, 64)]
    with pytest.raises(rules.RuleError, match="cannot be stated for Muon"):
        rules.check(bad, metas)
    rules.check(bad, [dataclasses.replace(metas[0], optimizer="adam")])  # fine for Adam

    def eps_rule(meta, scales):
        return scales.replace(adam_eps=0.5)

    with pytest.raises(rules.RuleError, match="epsilon"):
        rules.check(rules.compose(rules.he_init, eps_rule, name="eps"), metas)
    for rule in ("sp", "mup", "ntk", "mean_field", "am_mup", "mup_naive_spectral"):
        rules.check(rules.get(rule), metas)
    with pytest.raises(rules.RuleError, match="has none"):
        rules.check(rules.mup, [meta("input", 12, 256, None, 64), meta("output", 256, 3, 64)])


def test_family_mismatch_and_bare_scales_are_refused():
    with pytest.raises(rules.RuleError, match="optimizer='muon'"):
        rules.optimizer("muon", 1e-3, mlp("mup", optimizer="adam"))
    with pytest.raises(rules.RuleError, match="bare tree"):
        rules.optimizer("muon", 1e-3, {"w": rules.Scales()})


def test_describe_says_which_optimizer_updates_each_parameter():
    text = rules.describe(mlp("mup"))
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert rows["hidden/0/kernel"][-2:] == ["muon", "x1.6"]
    assert rows["output/kernel"][-1] == "adam" and rows["input/bias"][-1] == "adam"
    assert "update" not in rules.describe(mlp("mup", optimizer="adam"))


class NNXAttention(nnx.Module):
    def __init__(self, width, *, rngs):
        self.embed = nnx.Linear(8, width, rngs=rngs)
        self.query = nnx.LinearGeneral(width, (4, width // 4), rngs=rngs)
        self.out = nnx.LinearGeneral((4, width // 4), width, axis=(-2, -1), rngs=rngs)
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, 3, rngs=rngs)

    def __call__(self, x):
        h = self.embed(x)
        h = h + self.out(nnx.relu(self.query(self.norm(h))))
        return self.head(h)


def test_a_foreign_nnx_model_trains_with_muon_through_the_recipe():
    model = NNXAttention(64, rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXAttention(16, rngs=nnx.Rngs(0)))
    rules.parametrize(
        model,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(0),
        optimizer="muon",
        activation="relu",
    )
    scales = rules.param_scales(model)
    assert scales["query"]["kernel"].matrix == ((-3,), (-2, -1))
    assert scales["out"]["kernel"].matrix == ((-3, -2), (-1,))
    assert scales["embed"]["kernel"].matrix is None and scales["head"]["kernel"].matrix is None
    optimizer = nnx.Optimizer(model, rules.optimizer("muon", 3e-3, model), wrt=nnx.Param)
    x, y = jax.random.normal(jax.random.key(1), (16, 8)), jnp.arange(16) % 3

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    before = model.query.kernel[...]
    losses = [float(step(model, optimizer)) for _ in range(20)]
    assert losses[-1] < 0.8 * losses[0]
    change = (model.query.kernel[...] - before).reshape(64, 64)
    assert np.linalg.norm(np.asarray(change), 2) > 0
    assert "muon" in rules.describe(model)


class LinenCNN(linen.Module):
    width: int

    @linen.compact
    def __call__(self, x):
        h = linen.relu(linen.Conv(self.width, (3,))(x))
        h = linen.relu(linen.Conv(self.width, (3,))(h))  # hidden: Muon on (3 x width, width)
        return linen.Dense(3)(h.mean(axis=1))


def test_a_foreign_linen_model_trains_with_muon_through_the_recipe():
    x, y = jax.random.normal(jax.random.key(1), (16, 6, 2)), jnp.arange(16) % 3
    params = LinenCNN(32).init(jax.random.key(0), x)["params"]
    base = jax.eval_shape(lambda: LinenCNN(8).init(jax.random.key(0), x))["params"]
    plan = rules.parametrize(
        params,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(1),
        optimizer="muon",
        activation="relu",
    )
    params = plan.params
    assert plan.metas["Conv_1"]["kernel"].role == "hidden"
    assert plan.describe().count("muon") == 1
    tx = rules.optimizer("muon", 1e-2, plan)
    state = tx.init(params)
    loss = jax.jit(
        lambda p: optax.softmax_cross_entropy_with_integer_labels(
            LinenCNN(32).apply({"params": p}, x), y
        ).mean()
    )
    first = float(loss(params))

    @jax.jit  # one program: eagerly, Muon's Newton-Schulz steps compile op by op
    def train_step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return grads, updates, state

    for step in range(30):
        grads, updates, state = train_step(params, state)
        if step == 0:  # the hidden conv's step: Muon on its (3 x 32, 32) matrix, base shape 24 x 8
            g = grads["Conv_1"]["kernel"].reshape(96, 32)
            want = -1e-2 * 0.2 * math.sqrt(24) * orthogonalize_via_newton_schulz(g, NS_COEFFS, 5)
            got = updates["Conv_1"]["kernel"].reshape(96, 32)
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7)
        params = optax.apply_updates(params, updates)
    assert float(loss(params)) < 0.8 * first


def test_adafactor_is_an_adam_family_member_whose_first_step_is_adams():
    """A batch of one gives each weight a rank-1 gradient: Adafactor's factored moment is
    then exact and its first step is -lr x muP multiplier x sign(g), entry by entry."""
    assert rules.OPTIMIZERS["adafactor"] == "adam"
    model = mlp("mup", optimizer="adam")
    graphdef, params, rest = split_model(model)
    tx = rules.optimizer("adafactor", 0.01, model)
    x = jax.random.normal(jax.random.key(1), (1, 12))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p, rest)(x) ** 2)))(params)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)  # one program, not op by op
    multipliers = rules.lr_multipliers(model)
    for name in ("input", "output"):
        got, g = updates[name]["kernel"], grads[name]["kernel"]
        np.testing.assert_allclose(got, -0.01 * multipliers[name]["kernel"] * jnp.sign(g),
                                   rtol=1e-4, atol=1e-9)  # fmt: skip
    hidden = updates["hidden"][0]["kernel"]
    assert multipliers["hidden"][0]["kernel"] == pytest.approx(1 / 4)  # Adam's hidden 1/n
    np.testing.assert_allclose(jnp.abs(hidden)[jnp.abs(grads["hidden"][0]["kernel"]) > 0],
                               0.01 / 4, rtol=1e-4)  # fmt: skip
