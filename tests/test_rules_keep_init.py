"""`rules.parametrize` keeps the author's own init, on models written as Flax
projects write them (tests/flax_style_models.py): bit for bit at the base width; at 4x each
parameter's RMS is the author's base RMS times the rule's factor for its role; zeros stay
zeros; zero readout / zero query on request; a model without rule metadata is refused by
the optimizer; Linen's whole variables dict is refused with the fix; a tied GPT starts at
about ln V and its logit updates stay flat in width.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from flax_style_models import (
    GPT,
    GPT_CONTEXT,
    GPT_VOCAB,
    IMAGE,
    NNXCNN,
    LinenCNN,
    LinenViT,
    linen_init,
)

import rules
from rules import infer, init_values

TOKENS = jax.random.randint(jax.random.key(7), (4, GPT_CONTEXT), 0, GPT_VOCAB)
COMMON = dict(optimizer="adam", activation="gelu")
# The rule's factor per role at 4x the base width (n = 4), written out by hand.
MUP_4X = {"input": 1.0, "hidden": 1 / 2, "output": 1 / 4, "bias": 1.0, "norm": 1.0}
NTK_4X = {"input": 1.0, "hidden": 1 / 2, "output": 1 / 2, "bias": 1.0, "norm": 1.0}

NNX_MODELS = {  # name -> (build(width, seed), base width)
    "gpt": (lambda d, seed: GPT(d, rngs=nnx.Rngs(seed)), 64),
    "tied_gpt": (lambda d, seed: GPT(d, tied=True, rngs=nnx.Rngs(seed)), 64),
    "cnn": (lambda d, seed: NNXCNN(d, rngs=nnx.Rngs(seed)), 8),
}


def flat(tree) -> dict:
    """{'a/b/kernel': numpy array} of a params tree (boxes and NNX Variables unwrapped)."""
    tree = nn.meta.unbox(tree)
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {infer.path_string(path): np.asarray(leaf) for path, leaf in leaves}


def nnx_values(model) -> dict:
    return flat(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def metas(plan) -> dict:
    leaves = jax.tree.leaves(plan.metas, is_leaf=lambda x: isinstance(x, rules.LayerMeta))
    return {m.path: m for m in leaves}


def rms(x, center=0.0) -> float:
    return float(np.sqrt(np.mean((np.asarray(x, np.float64) - center) ** 2)))


@pytest.mark.parametrize("rule", ["mup", "ntk"])
@pytest.mark.parametrize("name", sorted(NNX_MODELS))
def test_nnx_models_at_the_base_width_are_the_authors_bit_for_bit(name, rule):
    build, d = NNX_MODELS[name]
    own = nnx_values(build(d, 3))
    model = build(d, 3)
    base = nnx.eval_shape(lambda: build(d, 0))
    delta = nnx.eval_shape(lambda: build(2 * d, 0))
    plan = rules.parametrize(model, base, rules.get(rule), delta=delta, **COMMON)
    got = nnx_values(model)
    assert got.keys() == own.keys()
    for path, value in got.items():
        assert value.dtype == own[path].dtype
        np.testing.assert_array_equal(value, own[path], err_msg=path)
    assert set(jax.tree.leaves(plan.init_factors)) == {1.0}


def test_a_linen_vit_at_the_base_width_is_the_authors_bit_for_bit():
    model = LinenViT(32)
    params = linen_init(model, IMAGE, jax.random.key(3))
    plan = rules.parametrize(
        params,
        linen_init(LinenViT(32), IMAGE),
        rules.mup,
        delta=linen_init(LinenViT(64), IMAGE),
        layouts=rules.linen_layouts(model, IMAGE),
        **COMMON,
    )
    new = plan.params
    assert jax.tree.structure(new) == jax.tree.structure(params)  # boxes kept
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert metas(plan)["head/kernel"].role == "output"


def assert_rescaled(new: dict, base: dict, plan, want: dict) -> set:
    """Every parameter's RMS about its constant is the base model's times want[role]."""
    seen = set()
    for path, meta in metas(plan).items():
        center = 1.0 if meta.role == "norm" else 0.0
        expected = rms(base[path], center) * want[meta.role]
        assert rms(new[path], center) == pytest.approx(expected, rel=1e-5, abs=1e-12), path
        seen.add(meta.role)
    factors = dict(zip(metas(plan), jax.tree.leaves(plan.init_factors)))
    for path, meta in metas(plan).items():
        assert factors[path] == pytest.approx(want[meta.role]), path
    return seen


@pytest.mark.parametrize("rule, want", [("mup", MUP_4X), ("ntk", NTK_4X)])
def test_gpt_at_4x_is_the_authors_base_init_times_the_rules_factor(rule, want):
    base_model = GPT(64, rngs=nnx.Rngs(1))
    model = GPT(256, rngs=nnx.Rngs(2))
    plan = rules.parametrize(model, base_model, rules.get(rule), **COMMON)
    got = nnx_values(model)
    seen = assert_rescaled(got, nnx_values(base_model), plan, want)
    assert seen == {"input", "hidden", "output", "bias", "norm"}
    # the author's N(0, 0.02): hidden 0.02 / 2, muP's readout 0.02 / 4, tables stay 0.02
    assert rms(got["blocks/0/c_fc/kernel"]) == pytest.approx(0.01, rel=0.03)
    assert rms(got["wte/embedding"]) == pytest.approx(0.02, rel=0.03)
    assert rms(got["wpe"]) == pytest.approx(0.02, rel=0.05)
    assert rms(got["lm_head/kernel"]) == pytest.approx(0.02 * want["output"], rel=0.03)
    np.testing.assert_array_equal(got["blocks/1/ln_2/scale"], 1.0)
    np.testing.assert_array_equal(got["blocks/1/c_fc/bias"], 0.0)
    scales = rules.param_scales(model)
    hidden = scales["blocks"][0]["c_fc"]["kernel"]
    if rule == "mup":  # LRs stay the rule's: Adam hidden 1/n
        assert hidden.lr == pytest.approx(1 / 4)
    else:
        # ntk's N(0,1) weights x sqrt(g/fan_in), folded: "keep" reads the author's values as
        # the folded weights, and Adam's LR multiplier is that factor sqrt(g/fan_in), which
        # is not 1 at the base width either (ntk's LR is per unit of its N(0,1) weights).
        assert hidden.lr == pytest.approx(math.sqrt(rules.gain("gelu") / 256))


def test_an_nnx_cnn_with_batchnorm_undoes_the_authors_width_law():
    """flax's default lecun init already shrinks as 1/sqrt(fan_in): keep divides it out
    (base RMS x factor), so hidden kernels come out as lecun at 4x, not lecun / 2."""
    base_model, model = NNXCNN(16, rngs=nnx.Rngs(1)), NNXCNN(64, rngs=nnx.Rngs(2))
    own = nnx_values(NNXCNN(64, rngs=nnx.Rngs(2)))
    plan = rules.parametrize(model, base_model, rules.mup, optimizer="adam", activation="relu")
    got = nnx_values(model)
    assert assert_rescaled(got, nnx_values(base_model), plan, MUP_4X) >= {"hidden", "norm"}
    # sampling: the base readout has 1280 entries (RMS within 2% at 1 sigma)
    assert rms(got["conv2/kernel"]) == pytest.approx(rms(own["conv2/kernel"]), rel=0.05)
    assert rms(got["linear2/kernel"]) == pytest.approx(rms(own["linear2/kernel"]) / 2, rel=0.07)
    np.testing.assert_array_equal(got["bn2/scale"], 1.0)
    np.testing.assert_array_equal(got["bn2/bias"], 0.0)


def test_a_linen_vit_at_4x_keeps_its_zeros_and_boxes():
    model = LinenViT(64)
    params = linen_init(model, IMAGE, jax.random.key(2))
    base = linen_init(LinenViT(16), IMAGE, jax.random.key(1))
    plan = rules.parametrize(
        params, base, rules.mup, layouts=rules.linen_layouts(model, IMAGE), **COMMON
    )
    new = plan.params
    got = flat(new)
    assert assert_rescaled(got, flat(base), plan, MUP_4X) == set(MUP_4X)
    np.testing.assert_array_equal(got["head/kernel"], 0.0)  # the author's zero head
    np.testing.assert_array_equal(got["cls"], 0.0)
    assert metas(plan)["pos_embedding"].role == "input"
    box = new["encoderblock_0"]["ViTMlp_0"]["Dense_0"]["kernel"]
    assert isinstance(box, nn.LogicallyPartitioned) and box.names == ("embed", "mlp")


def test_zero_readout_and_zero_query_are_one_word_each():
    # width 256, as the tests above: every GPT width is its own set of compiles
    model = GPT(256, rngs=nnx.Rngs(2))
    base = GPT(64, rngs=nnx.Rngs(1))
    rules.parametrize(model, base, rules.mup, zero=("readout", "query"), **COMMON)
    got = nnx_values(model)
    np.testing.assert_array_equal(got["lm_head/kernel"], 0.0)
    for block in ("0", "1"):
        np.testing.assert_array_equal(got[f"blocks/{block}/attn/query/kernel"], 0.0)
        assert rms(got[f"blocks/{block}/attn/key/kernel"]) > 0.005
    assert rms(got["wte/embedding"]) > 0.01

    vit = LinenViT(64)
    params = linen_init(vit, IMAGE, jax.random.key(2))
    vit_base = linen_init(LinenViT(32), IMAGE, jax.random.key(1))
    layouts = rules.linen_layouts(vit, IMAGE)
    plan = rules.parametrize(params, vit_base, rules.mup, zero="query", layouts=layouts, **COMMON)
    new = plan.params
    query = new["encoderblock_1"]["MultiHeadDotProductAttention_0"]["query"]["kernel"]
    np.testing.assert_array_equal(query, 0.0)

    tied = GPT(256, tied=True, rngs=nnx.Rngs(2))
    with pytest.raises(rules.RuleError, match="tied readout"):
        rules.parametrize(tied, GPT(64, tied=True, rngs=nnx.Rngs(1)), rules.mup, zero="readout",
                          **COMMON)  # fmt: skip
    with pytest.raises(rules.RuleError, match="matches no parameter"):
        rules.parametrize(GPT(256, rngs=nnx.Rngs(2)), base, rules.mup, zero=r"^nope", **COMMON)


def test_the_rules_own_init_stays_an_explicit_choice():
    params = linen_init(LinenCNN(64), IMAGE, jax.random.key(0))
    base = linen_init(LinenCNN(16), IMAGE)
    key = jax.random.key(4)
    plan = rules.parametrize(params, base, rules.mup, init="rule", key=key, **COMMON)
    new = plan.params
    drawn = init_values.initialize(params, plan.metas, plan.scales, key)  # the redraw, as before
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(drawn)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="pass key="):
        rules.parametrize(params, base, rules.mup, init="rule", **COMMON)
    with pytest.raises(ValueError, match="init='rule'"):
        rules.parametrize(params, base, rules.mup, key=key, **COMMON)
    with pytest.raises(ValueError, match="init must be"):
        rules.parametrize(params, base, rules.mup, init="redraw", **COMMON)
    with pytest.raises(rules.RuleError, match="abstract"):  # keep needs the base's values
        rules.parametrize(params, base, rules.mup, **COMMON)
    # values untouched: init=None, and key=None as before init= existed
    for untouched in (dict(init=None), dict(key=None)):
        again = rules.parametrize(params, base, rules.mup, **untouched, **COMMON)
        same = again.params
        assert again.scales == plan.scales
        for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(params)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="zero="):
        rules.parametrize(params, base, rules.mup, init=None, zero="readout", **COMMON)


def test_the_rules_redraw_is_the_eager_formula_bit_for_bit():
    """initialize draws each leaf as one compiled program; its bits are the eager formula's
    (the sign of zero biases and the norms' 1 + included), float32 and bfloat16."""
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3), "s": jnp.ones(3)}
    params["h"] = jnp.ones((4, 3), jnp.bfloat16)
    role = {"w": "hidden", "b": "bias", "s": "norm", "h": "hidden"}
    std = {"w": 0.5, "b": 0.0, "s": 0.1, "h": 0.3}
    metas = {k: rules.LayerMeta(role=role[k], fan_in=4, fan_out=3) for k in params}
    scales = {k: rules.Scales(init_std=std[k]) for k in params}
    key = jax.random.key(3)
    got = init_values.initialize(params, metas, scales, key)
    keys = dict(zip(sorted(params), jax.random.split(key, len(params))))
    for k, leaf in params.items():
        draw = jax.random.normal(keys[k], leaf.shape, leaf.dtype)
        want = (1.0 if role[k] == "norm" else 0.0) + std[k] * draw
        assert got[k].dtype == leaf.dtype
        assert np.asarray(got[k]).tobytes() == np.asarray(want).tobytes(), k


class LinenBNNet(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(self.width)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(3)(nn.relu(x))


def test_linens_whole_variables_dict_is_refused_with_the_fix():
    x = jnp.ones((4, 5))
    variables = LinenBNNet(32).init(jax.random.key(0), x)
    base = LinenBNNet(8).init(jax.random.key(1), x)
    with pytest.raises(rules.RuleError, match=r"batch_stats.*pass variables\['params'\]"):
        rules.parametrize(variables, base, rules.mup, **COMMON)
    new = rules.parametrize(variables["params"], base["params"], rules.mup, **COMMON).params
    out, _ = LinenBNNet(32).apply({**variables, "params": new}, x, mutable=["batch_stats"])
    assert out.shape == (4, 3)


def test_an_unparametrized_model_is_refused_by_the_optimizer(tmp_path):
    with pytest.raises(rules.RuleError, match=r"all parameters.*rules\.parametrize"):
        rules.optimizer("adam", 1e-3, GPT(64, rngs=nnx.Rngs(0)))
    model = GPT(256, rngs=nnx.Rngs(0))
    base = GPT(64, rngs=nnx.Rngs(1))
    rules.parametrize(model, base, rules.mup, **COMMON)
    rules.optimizer("adam", 1e-3, model)  # parametrized: accepted
    model.extra = nnx.Linear(256, 4, rngs=nnx.Rngs(0))  # added after parametrize
    with pytest.raises(rules.RuleError, match=r"2 of the \d+ parameters.*extra/"):
        rules.optimizer("adam", 1e-3, model)
    with pytest.raises(rules.RuleError, match="no rule metadata"):
        rules.param_scales(model)
    del model.extra
    # restored into a plain abstract model, without the init=None step
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(model))
    checkpointer.wait_until_finished()
    graphdef, state = nnx.split(nnx.eval_shape(lambda: GPT(256, rngs=nnx.Rngs(0))))
    restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "ckpt", state))
    with pytest.raises(rules.RuleError, match="init=None"):
        rules.optimizer("adam", 1e-3, restored)
    # Linen: the params tree itself is no set of scales
    params = linen_init(LinenCNN(32), IMAGE, jax.random.key(0))
    with pytest.raises(TypeError, match="Parametrization"):
        rules.optimizer("adam", 1e-3, params)


def test_describe_shows_the_factor_on_the_authors_init():
    model = GPT(256, tied=True, readout_multiplier=0.25, rngs=nnx.Rngs(0))
    rules.parametrize(model, GPT(64, tied=True, rngs=nnx.Rngs(1)), rules.mup, **COMMON)
    rows = {r["path"]: r for r in rules.layer_rows(model)}
    assert rows["blocks/0/c_fc/kernel"]["init_factor"] == pytest.approx(0.5)
    assert rows["wte/embedding"]["init_factor"] == 1.0
    text = rules.describe(model)
    assert "init_factor" in text.splitlines()[0]
    assert "<tied readout>" in text


def test_tied_readout_multiplier():
    assert rules.tied_readout_multiplier(rules.mup, 256, 64) == pytest.approx(1 / 4)
    assert rules.tied_readout_multiplier(rules.mup, 64, 64) == 1.0
    assert rules.tied_readout_multiplier(rules.sp, 256, 64) == pytest.approx(1 / 2)
    assert rules.tied_readout_multiplier(rules.mup, 256, None) == 1.0
    plan = rules.parametrize(
        GPT(256, tied=True, rngs=nnx.Rngs(0)), GPT(64, tied=True, rngs=nnx.Rngs(1)), rules.mup,
        **COMMON,
    )  # fmt: skip
    assert plan.tied_readout_multiplier(256, 64) == pytest.approx(1 / 4)


def tied_gpt_step(width: int, multiplier: float, lr: float = 3e-3) -> tuple[float, float]:
    """(initial loss, RMS of the change in logits after one Adam step) of a tied GPT."""
    model = GPT(width, depth=1, tied=True, readout_multiplier=multiplier, rngs=nnx.Rngs(0))
    base = GPT(64, depth=1, tied=True, rngs=nnx.Rngs(1))
    delta = nnx.eval_shape(lambda: GPT(128, depth=1, tied=True, rngs=nnx.Rngs(0)))
    rules.parametrize(model, base, rules.mup, delta=delta if width == 64 else None, **COMMON)
    optimizer = nnx.Optimizer(model, rules.optimizer("adam", lr, model), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(m):
            logits = m(TOKENS[:, :-1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, TOKENS[:, 1:]).mean()

        before = model(TOKENS)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss, model(TOKENS) - before

    loss, change = step(model, optimizer)
    return float(loss), rms(change)


def tied_gpt_widths() -> dict:
    """{width: logit update} at widths 64 and 256 under mup with the tied multiplier; each
    starts within 0.06 of ln V."""
    updates = {}
    for width in (64, 256):
        multiplier = rules.tied_readout_multiplier(rules.mup, width, 64)
        loss, updates[width] = tied_gpt_step(width, multiplier)
        # logits ~ N(0, s^2) with s = 0.02 sqrt(64) x (64/width) at most: ln V + s^2/2
        assert loss == pytest.approx(math.log(GPT_VOCAB), abs=0.06), width
    return updates


def test_a_tied_gpt_starts_at_ln_v_and_its_logit_updates_stay_flat_in_width():
    updates = tied_gpt_widths()
    # measured 0.81 from width 64 to 256 (one block)
    assert 0.6 < updates[256] / updates[64] < 1.5, updates


@pytest.mark.slow
def test_without_the_tied_multiplier_logit_updates_grow_with_width():
    updates = tied_gpt_widths()
    loss, without = tied_gpt_step(256, 1.0)
    assert loss > math.log(GPT_VOCAB) + 0.1  # logits 4x larger than with the multiplier
    assert without / updates[64] > 2.5, (without, updates)  # measured 3.2
