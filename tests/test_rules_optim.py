"""The optax adapter: one step moves each parameter by exactly lr x LR multiplier x gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rules
import zoo
from rules.optim import INJECTABLE
from scaling_training.engine import split_model


def mlp(rule, optimizer="sgd", width=128):
    config = zoo.ModelConfig(
        input_shape=(12,), num_classes=3, width=width, depth=3, base_width=32, optimizer=optimizer
    )
    return zoo.build("mlp", config, rules.get(rule), nnx.Rngs(0))


def test_scale_by_tree_multiplies_each_leaf():
    tx = rules.scale_by_tree({"a": 2.0, "b": {"c": 0.5}})
    updates = {"a": jnp.ones(3), "b": {"c": jnp.full(2, 4.0)}}
    out, _ = tx.update(updates, tx.init(updates))
    np.testing.assert_allclose(out["a"], 2.0)
    np.testing.assert_allclose(out["b"]["c"], 2.0)


@pytest.mark.parametrize("rule", ["mup", "mean_field", "sp"])
def test_one_sgd_step_is_lr_times_multiplier_times_gradient(rule):
    model = mlp(rule)
    graphdef, params, rest = split_model(model)
    multipliers = rules.lr_multipliers(model)
    lr = 0.05
    tx = rules.optimizer("sgd", lr, model)
    x = jax.random.normal(jax.random.key(1), (8, 12))

    def loss(p):
        return jnp.mean(nnx.merge(graphdef, p, rest)(x) ** 2)

    grads = jax.grad(loss)(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    seen = set()
    for path, mult in jax.tree_util.tree_leaves_with_path(multipliers):
        old_leaf = _at(params, path)
        want = old_leaf - lr * mult * _at(grads, path)
        np.testing.assert_allclose(_at(new, path), want, rtol=1e-6, atol=1e-7)
        seen.add(mult)
    if rule != "sp":
        assert len(seen) > 1, "the rule should give different layers different LR multipliers"


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


def test_lr_multipliers_match_param_structure_and_describe():
    model = mlp("mup", optimizer="adam")
    _, params, _ = split_model(model)
    multipliers = rules.lr_multipliers(model)
    assert jax.tree.structure(multipliers) == jax.tree.structure(params)
    assert multipliers["hidden"][0]["kernel"] == pytest.approx(32 / 128)
    assert multipliers["input"]["kernel"] == 1.0


def test_describe_lists_every_parameter_with_its_scales():
    model = mlp("mup")
    rows = rules.layer_rows(model)
    _, params, _ = split_model(model)
    assert len(rows) == len(jax.tree.leaves(params))
    by_path = {r["path"]: r for r in rows}
    readout = by_path["output/kernel"]
    assert readout["role"] == "output" and readout["shape"] == (128, 3)
    assert readout["fan_in"] == 128
    assert readout["lr_multiplier"] == pytest.approx(32 / 128)
    text = rules.describe(model, title="T")
    assert text.splitlines()[0] == "T"
    assert "lr_multiplier" in text.splitlines()[1]
    assert "output/kernel" in text
    paths = [r["path"] for r in rows]
    assert paths.index("input/kernel") < paths.index("output/kernel"), "model order, not sorted"


def test_an_abstract_model_describes_as_the_real_one():
    """layer_rows and describe read metadata and shapes, so nnx.eval_shape's model (no
    values drawn, nothing compiled) gives the real model's rows, shapes included."""
    model = mlp("mup", optimizer="adam")
    abstract = nnx.eval_shape(lambda: mlp("mup", optimizer="adam"))
    kernel = nnx.state(abstract, nnx.Param)["output"]["kernel"].get_value()
    assert isinstance(kernel, jax.ShapeDtypeStruct)  # nothing drawn
    assert rules.layer_rows(abstract) == rules.layer_rows(model)
    assert rules.describe(abstract) == rules.describe(model)
    assert rules.lr_multipliers(abstract) == rules.lr_multipliers(model)


def test_linear_uses_rule_scales_in_forward_and_init():
    meta = rules.LayerMeta(role="hidden", fan_in=512, fan_out=512, gain=2.0)
    layer = rules.Linear(meta, rules.ntk, rngs=nnx.Rngs(0))
    kernel = np.asarray(layer.kernel[...])
    assert kernel.std() == pytest.approx(1.0, rel=0.02)  # ntk: N(0, 1) weights
    x = jnp.ones((2, 512))
    y = layer(x)
    np.testing.assert_allclose(y, (x @ kernel) * np.sqrt(2 / 512), rtol=1e-5)
    assert layer.kernel.scales.multiplier == pytest.approx(np.sqrt(2 / 512))


def _params_and_grads():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5, -0.5])}
    grads = {"w": jnp.array([0.1, 0.2, -0.3]), "b": jnp.array([-1.0, 2.0])}
    scales = {
        "w": rules.Scales(lr=0.25, weight_decay=4.0, adam_eps=0.5),
        "b": rules.Scales(lr=2.0, weight_decay=0.0, adam_eps=1.0),
    }
    return params, grads, scales


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "lion"])
def test_optimizer_first_step_formula(name):
    """p <- p - lr (s.lr d + wd s.weight_decay p), d the optimizer's first-step direction."""
    params, grads, scales = _params_and_grads()
    lr, wd, eps = 0.1, 0.01, 1e-3
    tx = rules.optimizer(name, lr, scales, weight_decay=wd, eps=eps)
    updates, _ = tx.update(grads, tx.init(params), params)
    for key in params:
        g, p, s = grads[key], params[key], scales[key]
        direction = {
            "sgd": g,
            "momentum": g,  # the trace starts at the first gradient
            "adam": g / (jnp.abs(g) + eps * s.adam_eps),  # bias-corrected m = g, v = g^2
            "adamw": g / (jnp.abs(g) + eps * s.adam_eps),
            "lion": jnp.sign(g),
        }[name]
        want = -lr * (s.lr * direction + wd * s.weight_decay * p)
        # float32: v = (1 - b2) g^2 then divided by (1 - b2) again costs ~1e-5 relative
        np.testing.assert_allclose(updates[key], want, rtol=5e-5, atol=1e-8)


def test_scaled_adam_matches_optax_adamw_with_neutral_scales():
    params, grads, _ = _params_and_grads()
    neutral = jax.tree.map(lambda _: rules.Scales(), params)
    ours = rules.optimizer("adamw", 0.05, neutral, weight_decay=0.1)
    theirs = optax.adamw(0.05, weight_decay=0.1)
    s1, s2 = ours.init(params), theirs.init(params)
    p1 = p2 = params
    for _ in range(3):
        u1, s1 = ours.update(grads, s1, p1)
        u2, s2 = theirs.update(grads, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    for key in params:
        np.testing.assert_allclose(p1[key], p2[key], rtol=1e-6)


def test_decay_per_step_does_not_depend_on_width_under_mup():
    """Independent decay: hidden layers shrink by lr x wd per step at every width."""
    shrink = {}
    for width in (64, 256):
        model = mlp("mup", optimizer="adam", width=width)
        _, params, _ = split_model(model)
        tx = rules.optimizer("adamw", 0.1, rules.param_scales(model), weight_decay=0.5)
        zero = jax.tree.map(jnp.zeros_like, params)
        updates, _ = jax.jit(tx.update)(zero, tx.init(params), params)  # not op by op
        kernel = params["hidden"][0]["kernel"]
        shrink[width] = float(jnp.mean(-updates["hidden"][0]["kernel"] / kernel))
    assert shrink[64] == pytest.approx(0.05) and shrink[256] == pytest.approx(0.05)


@pytest.mark.parametrize(
    "options",
    [{}, dict(lr_factor=0.37, b2=0.95), dict(weight_decay_mode="independent", lr_factor=3.0)],
)
def test_injected_optimizer_is_the_optax_composition(options):
    """inject=("learning_rate",) is optax.inject_hyperparams around the same optimizer, the
    LR factor applied inside (the state holds the base LR a sweep sets) and independent
    decay chained after an undecayed optimizer: the same bits, step after step."""
    from rules.optim import independent_decay

    params, grads, scales = _params_and_grads()
    lr, wd = 0.1, 0.01
    factor = options.get("lr_factor", 1.0)
    independent = options.get("weight_decay_mode") == "independent"

    def by_hand(learning_rate):
        inner = rules.optimizer(
            "adam",
            learning_rate * factor if factor != 1.0 else learning_rate,
            scales,
            weight_decay=0.0 if independent else wd,
            b2=options.get("b2", 0.999),
        )
        return optax.chain(inner, independent_decay(wd, scales)) if independent else inner

    ours = rules.optimizer(
        "adam", lr, scales, weight_decay=wd, inject=("learning_rate",), **options
    )
    theirs = optax.inject_hyperparams(by_hand)(learning_rate=lr)
    s1, s2 = ours.init(params), theirs.init(params)
    assert float(s1.hyperparams["learning_rate"]) == np.float32(lr)
    p1 = _same_bits_after_three_steps(ours, theirs, s1, s2, params, grads)
    assert not np.array_equal(p1["w"], params["w"])  # the steps moved the parameters


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_inject_true_holds_every_number_of_the_optimizer(name):
    """inject=True: learning rate, weight decay, momentum, b1, b2 and eps are all arrays in
    the state (the app's plain runs and their checkpoints), the same bits as a factory
    that takes exactly those six."""
    params, grads, scales = _params_and_grads()

    def by_hand(learning_rate, weight_decay, momentum, b1, b2, eps):
        numbers = dict(weight_decay=weight_decay, momentum=momentum, b1=b1, b2=b2, eps=eps)
        return rules.optimizer(name, learning_rate, scales, **numbers)

    numbers = dict(learning_rate=0.1, weight_decay=0.01, momentum=0.9, b1=0.9, b2=0.99, eps=1e-6)
    theirs = optax.inject_hyperparams(by_hand)(**numbers)
    ours = rules.optimizer(name, 0.1, scales, weight_decay=0.01, b2=0.99, eps=1e-6, inject=True)
    s1, s2 = ours.init(params), theirs.init(params)
    assert sorted(s1.hyperparams) == sorted(numbers) == sorted(INJECTABLE)
    _same_bits_after_three_steps(ours, theirs, s1, s2, params, grads)


def test_injected_lion_steps_under_jit_with_its_own_beta2():
    """Lion's b2 default (0.99, not Adam's 0.999) is chosen before b2 becomes a traced
    array: the app's injected Lion used to fail at its first jitted step."""
    params, grads, scales = _params_and_grads()
    tx = rules.optimizer("lion", 0.1, scales, inject=True)
    state = tx.init(params)
    assert float(state.hyperparams["b2"]) == np.float32(0.99)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    plain = rules.optimizer("lion", 0.1, scales)
    want, _ = plain.update(grads, plain.init(params), params)
    for key in params:
        np.testing.assert_allclose(updates[key], want[key], rtol=1e-6)


def test_optimizer_refuses_unknown_modes_and_injections():
    _, _, scales = _params_and_grads()
    with pytest.raises(ValueError, match="weight_decay_mode"):
        rules.optimizer("adam", 0.1, scales, weight_decay_mode="decoupled")
    with pytest.raises(ValueError, match="cannot inject"):
        rules.optimizer("adam", 0.1, scales, inject=("lr",))


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="choose one of: sgd, momentum, adam, adamw, lion"):
        rules.optimizer("shampoo", 0.1, {})


def test_describe_shows_branch_multipliers_and_nondefault_epsilon():
    config = zoo.ModelConfig(
        input_shape=(12,),
        num_classes=3,
        width=64,
        depth=8,
        base_width=16,
        base_depth=2,
        optimizer="adam",
    )

    def build(rule):  # abstract: describe reads metadata and shapes only
        return nnx.eval_shape(lambda: zoo.build("resmlp", config, rule, nnx.Rngs(0)))

    plain = rules.describe(build(rules.mup))
    assert "eps_multiplier" not in plain
    assert "<branch output>  branch" in plain
    text = rules.describe(build(rules.completep))
    header, *_ = text.splitlines()
    assert "eps_multiplier" in header and "wd_multiplier" not in header
    branch = [line for line in text.splitlines() if "<branch output>" in line]
    assert len(branch) == 1 and branch[0].split()[6] == "0.25"  # (8 / 2)^-1: the multiplier


def _same_bits_after_three_steps(ours, theirs, s1, s2, params, grads):
    """Three jitted steps of both optimizers from the same start: bit-identical parameters."""
    p1 = p2 = params
    for _ in range(3):
        u1, s1 = jax.jit(ours.update)(grads, s1, p1)
        u2, s2 = jax.jit(theirs.update)(grads, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    for key in params:
        assert np.asarray(p1[key]).tobytes() == np.asarray(p2[key]).tobytes()
    return p1
