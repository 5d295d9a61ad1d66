"""`rules.parametrize` on models written the way real Flax projects write them.

Every parameter's role, init std and LR multipliers must equal those of the project's own
layers (`rules.Linear`) given the metadata this file writes down by hand for each model,
at the base width and at 4x; microsoft/mup's table (Tensor Programs V, table 3) is checked
with literal numbers; a few optimizer steps stay finite.
"""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax_style_models import IMAGE, NNXCNN, NNXLM, TOKENS, VOCAB, LinenCNN, LinenLM, linen_init

import rules

GELU = rules.gain("gelu")


def reference(role, fan_in, fan_out, base_in, base_out, gain, optimizer, rule, branch=None):
    """The Scales of a weight, its bias and its norm from the project's own layers."""
    meta = rules.LayerMeta(
        role=role,
        fan_in=fan_in,
        fan_out=fan_out,
        base_fan_in=base_in,
        base_fan_out=base_out,
        gain=gain,
        optimizer=optimizer,
        **(rules.branch_fields(*branch) if isinstance(branch, tuple) else {}),
    )
    # abstract: only its metadata is read, and a concrete init would compile per shape
    layer = nnx.eval_shape(lambda: rules.Linear(meta, rule, rngs=nnx.Rngs(0)))
    norm = rule(rules.LayerMeta(**{**meta.__dict__, "role": "norm", "fan_in": 1}))
    return {"kernel": layer.kernel.scales, "bias": layer.bias.scales, "norm": norm}


def lm_spec(d, d0, width, width0):
    """Hand-written (role, fan_in, fan_out, base_fan_in, base_fan_out, gain) per layer kind
    of the transformers: d the model width, `width` = heads x head_dim; a base of None
    means that dimension does not grow."""
    return {
        "embedding": ("input", 1, d, None, d0, 1.0),
        "qkv": ("hidden", d, width, d0, width0, GELU),
        "out": ("hidden", width, d, width0, d0, GELU),
        "mlp_in": ("hidden", d, 4 * d, d0, 4 * d0, GELU),
        "mlp_out": ("hidden", 4 * d, d, 4 * d0, d0, GELU),
        "readout": ("output", d, VOCAB, d0, None, GELU),
        "norm": ("norm", 1, d, None, d0, GELU),
    }


LINEN_KINDS = {
    r"Embed_0/embedding": "embedding",
    r"(query|key|value)/": "qkv",
    r"/out/": "out",
    r"Dense_0/": "mlp_in",
    r"Dense_1/": "mlp_out",
    r"^logits/": "readout",
    r"LayerNorm_\d+/": "norm",
}
NNX_KINDS = {
    r"embed/embedding": "embedding",
    r"(query|key|value)/": "qkv",
    r"/out/": "out",
    r"mlp_in/": "mlp_in",
    r"mlp_out/": "mlp_out",
    r"^logits/": "readout",
    r"norm\d?/": "norm",
}


def assert_matches_reference(plan, values, spec, kinds, rule, optimizer, branch=None):
    """Each parameter: role, scales == the reference layer's; fresh values have its std."""
    family = rules.OPTIMIZERS[optimizer]
    flat_values = dict(zip([m.path for m in _metas(plan)], jax.tree.leaves(values)))
    seen = set()
    for meta, scales in zip(_metas(plan), jax.tree.leaves(plan.scales, is_leaf=_is_scales)):
        kind = next(k for pattern, k in kinds.items() if re.search(pattern, meta.path))
        role, fan_in, fan_out, base_in, base_out, gain = spec[kind]
        in_branch = branch is not None and re.search(branch[0], meta.path)
        ref = reference(
            role,
            fan_in,
            fan_out,
            base_in,
            base_out,
            gain,
            family,
            rule,
            branch=branch[1] if in_branch else None,
        )
        leaf = meta.path.rsplit("/", 1)[-1]
        which = (
            "norm" if kind == "norm" and leaf == "scale" else "bias" if leaf == "bias" else "kernel"
        )
        want_role = {"kernel": role, "bias": "bias", "norm": "norm"}[which]
        assert meta.role == want_role, meta.path
        if which == "kernel":
            assert (meta.fan_in, meta.fan_out) == (fan_in, fan_out), meta.path
        assert scales == ref[which], meta.path
        value = np.asarray(flat_values[meta.path])
        if which == "kernel" and value.size >= 512:
            assert value.std() == pytest.approx(scales.init_std, rel=0.15), meta.path
        elif which != "kernel":
            np.testing.assert_array_equal(value, 1.0 if which == "norm" else 0.0)
        seen.add(kind)
    assert seen == set(kinds.values())


def _metas(plan):
    return jax.tree.leaves(plan.metas, is_leaf=lambda x: isinstance(x, rules.LayerMeta))


def _is_scales(x):
    return isinstance(x, rules.Scales)


# heads grow (head_dim fixed) or head_dim grows (heads fixed); d_model grows either way.
GROWTH = {
    "heads": lambda n: dict(heads=2 * n, head_dim=8),
    "head_dim": lambda n: dict(heads=2, head_dim=8 * n),
}


CASES = [
    (1, "heads", "adam"),
    pytest.param(4, "heads", "sgd", marks=pytest.mark.slow),  # sgd: TP V table 3 covers it
    (4, "head_dim", "adam"),
]


@pytest.mark.parametrize("n, growth, optimizer", CASES)
def test_linen_lm_matches_rules_layers(n, growth, optimizer):
    dims = GROWTH[growth]
    model = LinenLM(d_model=16 * n, **dims(n))
    params = linen_init(model, TOKENS, jax.random.key(0))
    base = linen_init(LinenLM(d_model=16, **dims(1)), TOKENS)
    delta = linen_init(LinenLM(d_model=32, **dims(2)), TOKENS) if n == 1 else None
    plan = rules.parametrize(
        params,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(1),
        optimizer=optimizer,
        activation="gelu",
        delta=delta,
        layouts=rules.linen_layouts(model, TOKENS),
    )
    new = plan.params
    width, width0 = dims(n)["heads"] * dims(n)["head_dim"], 16
    spec = lm_spec(16 * n, 16, width, width0)
    assert_matches_reference(plan, nn.meta.unbox(new), spec, LINEN_KINDS, rules.mup, optimizer)
    # boxes kept: the same logical names, re-boxed around the new values
    box = new["LinenBlock_0"]["LinenAttention_0"]["query"]["kernel"]
    assert isinstance(box, nn.LogicallyPartitioned) and box.names == ("embed", "heads", "kv")
    _train_linen(model, new, plan, optimizer)


def _train_linen(model, params, plan, optimizer, steps=2):
    tx = rules.optimizer(optimizer, 1e-2, plan)
    state = tx.init(params)

    def loss(p):
        logits = model.apply({"params": p}, TOKENS)
        return optax.softmax_cross_entropy_with_integer_labels(logits, TOKENS).mean()

    @jax.jit  # one program: an eager grad of a transformer compiles each op on its own
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    for _ in range(steps):
        params, state, _ = step(params, state)
    # the loss after the steps, from one more call (its update unused): no second program
    assert np.isfinite(float(step(params, state)[2]))
    return params


@pytest.mark.parametrize("n, growth, optimizer", CASES)
def test_nnx_lm_matches_rules_layers(n, growth, optimizer):
    dims = GROWTH[growth]
    model = NNXLM(16 * n, **dims(n), rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXLM(16, **dims(1), rngs=nnx.Rngs(0)))
    delta = nnx.eval_shape(lambda: NNXLM(32, **dims(2), rngs=nnx.Rngs(0))) if n == 1 else None
    plan = rules.parametrize(
        model,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(1),
        optimizer=optimizer,
        activation="gelu",
        delta=delta,
    )
    width = dims(n)["heads"] * dims(n)["head_dim"]
    values = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    spec = lm_spec(16 * n, 16, width, 16)
    assert_matches_reference(plan, values, spec, NNX_KINDS, rules.mup, optimizer)
    assert rules.param_scales(model) == plan.scales
    _train_nnx(model, optimizer, TOKENS, lambda out: out.mean() ** 2)


def _train_nnx(model, optimizer, x, loss_of, steps=2):
    tx = rules.optimizer(optimizer, 1e-2, model)
    state = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, state):
        loss, grads = nnx.value_and_grad(lambda m: loss_of(m(x)))(model)
        state.update(model, grads)
        return loss

    for _ in range(steps):
        loss = step(model, state)
    assert np.isfinite(float(loss))


def test_tp5_table3_numbers_on_the_nnx_lm():
    """microsoft/mup's table (TP V table 3) at 4x: literal numbers, not our formulas."""
    for optimizer, want_lr in {
        "adam": {
            "embedding": 1,
            "qkv": 1 / 4,
            "out": 1 / 4,
            "mlp_in": 1 / 4,
            "readout": 1 / 4,
            "bias": 1,
            "norm": 1,
        },  # fmt: skip
        "sgd": {
            "embedding": 4,
            "qkv": 1,
            "out": 1,
            "mlp_in": 1,
            "readout": 1 / 4,
            "bias": 4,
            "norm": 4,
        },  # fmt: skip
    }.items():
        model = NNXLM(64, heads=8, head_dim=8, rngs=nnx.Rngs(0))
        base = nnx.eval_shape(lambda: NNXLM(16, heads=2, head_dim=8, rngs=nnx.Rngs(0)))
        rules.parametrize(
            model,
            base,
            rules.mup,
            init="rule",
            key=jax.random.key(0),
            optimizer=optimizer,
            activation=1.0,
        )
        rows = {r["path"]: r for r in rules.layer_rows(model)}
        got = {
            "embedding": rows["embed/embedding"],
            "qkv": rows["blocks/0/attention/query/kernel"],
            "out": rows["blocks/0/attention/out/kernel"],
            "mlp_in": rows["blocks/0/mlp_in/kernel"],
            "readout": rows["logits/kernel"],
            "bias": rows["blocks/0/mlp_in/bias"],
            "norm": rows["norm/scale"],
        }
        for kind, lr in want_lr.items():
            assert got[kind]["lr_multiplier"] == pytest.approx(lr), (optimizer, kind)
        # init: hidden 1/sqrt(fan_in); readout 1/fan_in-like (1/sqrt(fan_in) / sqrt(n));
        # input (embedding) does not shrink with width.
        assert got["mlp_in"]["init_std"] == pytest.approx(1 / math.sqrt(64))
        assert got["readout"]["init_std"] == pytest.approx(1 / math.sqrt(64) / 2)
        assert got["embedding"]["init_std"] == pytest.approx(1.0)


@pytest.mark.parametrize("rule", ["completep", pytest.param("depth_mup", marks=pytest.mark.slow)])
def test_depth_rules_on_user_transformers(rule):
    """Blocks named by a regex get the depth rule's LR/eps; the branch multiplier is the
    user's to apply, and the model built with it trains."""
    rule = rules.get(rule)
    depth, base_depth, n = 4, 2, 2
    base = linen_init(LinenLM(d_model=16, heads=2, head_dim=8, depth=depth), TOKENS)
    kwargs = dict(depth=depth, base_depth=base_depth, residual=r"^LinenBlock_\d+/")
    probe = rules.parametrize(
        linen_init(LinenLM(d_model=16 * n, heads=2 * n, head_dim=8, depth=depth), TOKENS),
        base,
        rule,
        key=None,
        optimizer="adam",
        activation="gelu",
        layouts=rules.linen_layouts(
            LinenLM(d_model=16 * n, heads=2 * n, head_dim=8, depth=depth), TOKENS
        ),
        **kwargs,
    )
    multiplier = probe.residual_multiplier
    assert multiplier == pytest.approx(rules.residual_multiplier(rule, depth, base_depth))
    assert multiplier == pytest.approx({"completep": 0.5, "depth_mup": 0.5**0.5}[rule.name])
    scale = probe.logit_scale(8, 8)
    model = LinenLM(
        d_model=16 * n,
        heads=2 * n,
        head_dim=8,
        depth=depth,
        residual_multiplier=multiplier,
        attention_scale=scale,
    )
    params = linen_init(model, TOKENS, jax.random.key(0))
    plan = rules.parametrize(
        params,
        base,
        rule,
        init="rule",
        key=jax.random.key(1),
        optimizer="adam",
        activation="gelu",
        layouts=rules.linen_layouts(model, TOKENS),
        **kwargs,
    )
    new = plan.params
    spec = lm_spec(16 * n, 16, 16 * n, 16)
    branch = (r"^LinenBlock_\d+/", (depth, base_depth))
    assert_matches_reference(
        plan, nn.meta.unbox(new), spec, LINEN_KINDS, rule, "adam", branch=branch
    )
    _train_linen(model, new, plan, "adam")


def test_cnns_match_rules_layers():
    """The Linen mnist-style CNN and an NNX CNN with BatchNorm and Dropout, mup at 4x."""
    params = linen_init(LinenCNN(64), IMAGE, jax.random.key(0))
    base = linen_init(LinenCNN(16), IMAGE)
    common = dict(optimizer="sgd", activation="relu")
    plan = rules.parametrize(params, base, rules.mup, init="rule", key=jax.random.key(1), **common)
    new = plan.params
    roles = {m.path: (m.role, m.fan_in, m.base_fan_in) for m in _metas(plan)}
    assert roles["Conv_0/kernel"] == ("input", 9, None)
    assert roles["Conv_1/kernel"] == ("hidden", 9 * 64, 9 * 16)
    assert roles["Dense_1/kernel"] == ("output", 512, 128)
    ref = reference("hidden", 9 * 64, 128, 9 * 16, 32, 2.0, "sgd", rules.mup)
    assert plan.scales["Conv_1"]["kernel"] == ref["kernel"]
    assert plan.scales["Conv_1"]["bias"] == ref["bias"]
    _train_cnn_linen(new, plan)

    model = NNXCNN(32, rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXCNN(8, rngs=nnx.Rngs(0)))
    rules.parametrize(
        model,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(2),
        optimizer="adam",
        activation="relu",
    )
    rows = {r["path"]: r for r in rules.layer_rows(model)}
    assert rows["bn1/scale"]["role"] == "norm" and rows["bn1/bias"]["role"] == "bias"
    np.testing.assert_array_equal(np.asarray(model.bn2.scale[...]), 1.0)
    assert rows["conv2/kernel"]["lr_multiplier"] == pytest.approx(1 / 4)
    assert rows["linear2/kernel"]["lr_multiplier"] == pytest.approx(1 / 4)
    assert rows["conv1/kernel"]["lr_multiplier"] == 1.0
    model.train()
    _train_nnx(model, "adam", IMAGE, lambda out: out.mean() ** 2)


def _train_cnn_linen(params, plan):
    tx = rules.optimizer("sgd", 1e-2, plan)
    state = tx.init(params)

    def loss(p):
        return jnp.mean(LinenCNN(64).apply({"params": p}, IMAGE) ** 2)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    for _ in range(3):
        params, state, _ = step(params, state)
    assert np.isfinite(float(step(params, state)[2]))  # the loss after the 3 steps
