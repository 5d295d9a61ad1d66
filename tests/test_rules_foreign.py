"""Rules on Flax models written without `rules`: the CNN of the flax examples, NNX and Linen."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import rules
from rules import foreign, infer

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
    plan = rules.parametrize(
        params,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(1),
        optimizer="adam",
        activation="relu",
    )
    new, scales, metas = plan.params, plan.scales, plan.metas
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

    tx = rules.optimizer("adam", 1e-3, scales)
    model = LinenCNN(64)

    def loss(p):
        return jnp.mean(model.apply({"params": p}, IMAGE) ** 2)

    grads = jax.jit(jax.grad(loss))(new)  # compiled: eagerly each op compiles alone
    updates, _ = jax.jit(tx.update)(grads, tx.init(new), new)
    assert np.all(np.isfinite(jax.tree.leaves(optax.apply_updates(new, updates))[0]))


def test_nnx_reinit_attaches_metadata_and_trains():
    model = NNXCNN(32, rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXCNN(8, rngs=nnx.Rngs(0)))
    plan = rules.parametrize(
        model,
        base,
        rules.mup,
        init="rule",
        key=jax.random.key(2),
        optimizer="sgd",
        activation="relu",
    )
    assert plan.params is None  # the model holds its new values
    scales = plan.scales
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
    metas = infer.infer_metas(
        linen_params(32), linen_shapes(16), optimizer="sgd", activation="relu", overrides=overrides
    )
    assert metas["Dense_1"]["kernel"].gain == 1.0 and metas["Dense_1"]["bias"].gain == 1.0
    assert metas["Conv_0"]["kernel"].role == "hidden"
    assert metas["Conv_0"]["bias"].role == "bias"


def test_branch_rules_need_the_residual_parameters_and_structures_must_match():
    params = linen_params(16)
    with pytest.raises(rules.RuleError, match="residual="):
        rules.parametrize(
            params, linen_shapes(8), rules.depth_mup, key=None, optimizer="adam", activation="relu"
        )
    with pytest.raises(ValueError, match="different parameter structure"):
        infer.infer_metas(
            params, {"Dense_0": params["Dense_0"]}, optimizer="sgd", activation="relu"
        )


def test_the_base_width_model_is_accepted_with_a_delta_and_equals_sp():
    """At the base width the shapes cannot tell what grows: an error that says what to pass;
    with a delta model, mup == sp there and every role (so every gain) is the wide model's."""
    params = linen_params(16)
    with pytest.raises(rules.RuleError, match="delta="):
        rules.parametrize(
            params, linen_shapes(16), rules.mup, key=None, optimizer="adam", activation="relu"
        )
    common = dict(init="rule", key=jax.random.key(0), optimizer="adam", activation="relu")
    mup = rules.parametrize(params, linen_shapes(16), rules.mup, delta=linen_shapes(32), **common)
    mup_params = mup.params
    sp = rules.parametrize(params, linen_shapes(16), rules.sp, delta=linen_shapes(32), **common)
    sp_params = sp.params
    assert mup.scales == sp.scales
    wide = rules.parametrize(linen_params(64), linen_shapes(16), rules.mup, **common)
    for base_meta, wide_meta in zip(_metas(mup), _metas(wide)):
        assert (base_meta.role, base_meta.gain) == (wide_meta.role, wide_meta.gain)
    assert mup.metas["Conv_0"]["kernel"].gain == 1.0  # raw pixels, not relu's 2
    assert mup.scales["Conv_0"]["kernel"].init_std == pytest.approx(1 / 3)  # sqrt(1 / 9)
    for a, b in zip(jax.tree.leaves(mup_params), jax.tree.leaves(sp_params)):
        np.testing.assert_array_equal(a, b)


def _metas(plan):
    return jax.tree.leaves(plan.metas, is_leaf=lambda x: isinstance(x, rules.LayerMeta))


class LinenAttentionLM(linen.Module):
    """Attention with DenseGeneral q/k/v (d, heads, head_dim) and out (heads, head_dim, d),
    every parameter boxed with logical axis names (lm1b style)."""

    d_model: int
    heads: int
    head_dim: int

    @linen.compact
    def __call__(self, x):
        def boxed(names):
            return linen.with_logical_partitioning(linen.initializers.lecun_normal(), names)

        ones = linen.with_logical_partitioning(linen.initializers.ones, ("embed",))
        h = linen.LayerNorm(scale_init=ones)(x)
        q, k, v = (
            linen.DenseGeneral(
                (self.heads, self.head_dim), kernel_init=boxed(("embed", "heads", "kv")), name=n
            )(h)  # fmt: skip
            for n in ("query", "key", "value")
        )
        y = rules.dot_product_attention(q, k, v, scale=1.0 / self.head_dim)
        out = linen.DenseGeneral(
            self.d_model, axis=(-2, -1), kernel_init=boxed(("heads", "kv", "embed")), name="out"
        )
        return x + out(y)


SEQUENCE = jnp.ones((2, 5, 8))


def attention_params(d_model, heads, head_dim, key=None):
    model = LinenAttentionLM(d_model, heads, head_dim)
    x = jnp.ones((2, 5, d_model))
    if key is None:
        return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    return model.init(key, x)["params"]


@pytest.mark.parametrize("growth", ["heads", "head_dim"])
def test_multi_axis_kernels_get_hidden_roles_and_their_real_fan_in(growth):
    """The bug: q/k/v were taken as `input` (heads at shape[-2]) and out as `input` too."""
    heads, head_dim = (8, 4) if growth == "heads" else (2, 16)
    params = attention_params(32, heads, head_dim, jax.random.key(0))
    base = attention_params(8, 2, 4)
    layouts = rules.linen_layouts(LinenAttentionLM(32, heads, head_dim), jnp.ones((2, 5, 32)))
    plan = rules.parametrize(
        params, base, rules.mup, key=None, optimizer="adam", activation=1.0, layouts=layouts
    )
    for name in ("query", "key", "value"):
        meta = plan.metas[name]["kernel"]
        assert (meta.role, meta.fan_in, meta.base_fan_in) == ("hidden", 32, 8), name
        assert (meta.fan_out, meta.base_fan_out) == (32, 8)
        assert plan.scales[name]["kernel"].lr == pytest.approx(1 / 4)  # Adam hidden: 1/n
    out = plan.metas["out"]["kernel"]
    assert (out.role, out.fan_in, out.base_fan_in, out.fan_out) == ("hidden", 32, 8, 32)
    assert plan.metas["query"]["bias"].role == "bias"


def test_an_ambiguous_kernel_is_an_error_naming_it_and_its_override():
    params, base = attention_params(32, 8, 4, jax.random.key(0)), attention_params(8, 2, 4)
    with pytest.raises(rules.RuleError, match=r"key/kernel.*input_axes"):
        rules.parametrize(params, base, rules.mup, key=None, optimizer="adam", activation=1.0)
    overrides = {
        "(query|key|value)/kernel": {"input_axes": (0,)},
        "out/kernel": {"input_axes": (0, 1)},
    }
    plan = rules.parametrize(
        params, base, rules.mup, key=None, optimizer="adam", activation=1.0, overrides=overrides
    )
    assert plan.metas["key"]["kernel"].fan_in == 32 and plan.metas["out"]["kernel"].fan_in == 32


def test_a_parameter_of_unknown_kind_is_an_error_naming_it():
    params = {"layer": {"kernel": jnp.ones((16, 16)), "gamma": jnp.ones(16)}}
    base = {"layer": {"kernel": jnp.ones((4, 4)), "gamma": jnp.ones(4)}}
    with pytest.raises(rules.RuleError, match=r"layer/gamma.*overrides=.*'bias'"):
        rules.parametrize(params, base, rules.mup, key=None, optimizer="sgd", activation="relu")
    plan = rules.parametrize(
        params, base, rules.mup, key=None, optimizer="sgd", activation="relu",
        overrides={"gamma": "norm"},
    )  # fmt: skip
    assert plan.metas["layer"]["gamma"].role == "norm"


def test_boxed_params_are_unboxed_and_reboxed_and_norm_scales_stay_ones():
    """The bug: LogicallyPartitioned leaves end in '.../scale/value'; LayerNorm scales were
    taken for biases and re-initialised to 0."""
    params = attention_params(32, 8, 4, jax.random.key(0))
    layouts = rules.linen_layouts(LinenAttentionLM(32, 8, 4), jnp.ones((2, 5, 32)))
    common = dict(optimizer="adam", activation=1.0, layouts=layouts)
    base = attention_params(8, 2, 4)
    plan = rules.parametrize(params, base, rules.mup, init="rule", key=jax.random.key(1), **common)
    new = plan.params
    assert jax.tree.structure(new) == jax.tree.structure(params)
    for old_box, new_box in zip(
        jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, linen.LogicallyPartitioned)),
        jax.tree.leaves(new, is_leaf=lambda x: isinstance(x, linen.LogicallyPartitioned)),
    ):
        if isinstance(old_box, linen.LogicallyPartitioned):
            assert type(new_box) is type(old_box) and new_box.names == old_box.names
    assert plan.metas["LayerNorm_0"]["scale"].role == "norm"
    np.testing.assert_array_equal(new["LayerNorm_0"]["scale"].value, 1.0)
    np.testing.assert_array_equal(new["LayerNorm_0"]["bias"], 0.0)
    # the optimizer takes the boxed tree as it is (paths skip the box)
    tx = rules.optimizer("adam", 1e-3, plan)
    grads = jax.tree.map(jnp.ones_like, new)
    updates, _ = tx.update(grads, tx.init(new), new)
    assert jax.tree.structure(updates) == jax.tree.structure(new)


def test_nnx_sharding_names_survive_and_nnx_optimizer_takes_the_rule():
    """The bug: nnx.Optimizer(model, tx, wrt=nnx.Param) failed (dict against nnx.State)."""

    class Tiny(nnx.Module):
        def __init__(self, width, rngs):
            init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model"))
            self.inp = nnx.Linear(3, width, kernel_init=init, rngs=rngs)
            self.out = nnx.Linear(width, 2, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.inp(x)))

    mesh = jax.make_mesh((1,), ("model",), devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        model = Tiny(32, nnx.Rngs(0))
        base = nnx.eval_shape(lambda: Tiny(8, nnx.Rngs(0)))
        rules.parametrize(
            model,
            base,
            rules.mup,
            init="rule",
            key=jax.random.key(1),
            optimizer="adamw",
            activation="relu",
        )
        assert model.inp.kernel.get_metadata()["out_sharding"] == (None, "model")
        optimizer = nnx.Optimizer(model, rules.optimizer("adamw", 0.1, model), wrt=nnx.Param)
        x = jnp.ones((4, 3))
        before = model.out.kernel[...]
        grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(x) ** 2)))(model)
        nnx.jit(lambda o, m, g: o.update(m, g))(optimizer, model, grads)  # as train steps run
        step = model.out.kernel[...] - before
        # adam's first step is -lr x lr_multiplier x sign(g): readout multiplier 8/32
        moved = np.asarray(grads["out"]["kernel"][...]) != 0  # dead relus: no gradient
        assert moved.any()
        np.testing.assert_allclose(np.abs(step)[moved], 0.1 * 0.25, rtol=1e-3)
        with pytest.raises(rules.RuleError, match="optimizer='sgd'"):
            rules.optimizer("sgd", 0.1, model)


def test_a_restored_nnx_model_keeps_its_multipliers(tmp_path):
    """The bug: restoring into nnx.eval_shape(Model) lost the LR multipliers. The recipe:
    parametrize the abstract model with key=None (metadata only), then restore into it."""
    model = NNXCNN(32, rngs=nnx.Rngs(0))
    base = nnx.eval_shape(lambda: NNXCNN(8, rngs=nnx.Rngs(0)))
    common = dict(optimizer="adam", activation="relu")
    rules.parametrize(model, base, rules.mup, init="rule", key=jax.random.key(1), **common)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(model))
    checkpointer.wait_until_finished()

    abstract = nnx.eval_shape(lambda: NNXCNN(32, rngs=nnx.Rngs(5)))
    rules.parametrize(abstract, base, rules.mup, key=None, **common)
    graphdef, state = nnx.split(abstract)
    restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "ckpt", state))
    assert rules.layer_rows(restored) == rules.layer_rows(model)
    assert rules.param_scales(restored) == rules.param_scales(model)
    for a, b in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(restored))):
        np.testing.assert_array_equal(a, b)


def test_a_restored_linen_model_has_the_same_scales(tmp_path):
    params = linen_params(32)
    common = dict(optimizer="sgd", activation="relu")
    key = jax.random.key(1)
    plan = rules.parametrize(params, linen_shapes(8), rules.mup, init="rule", key=key, **common)
    new = plan.params
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", new)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "ckpt", linen_shapes(32))
    again = rules.parametrize(restored, linen_shapes(8), rules.mup, key=None, **common)
    assert again.scales == plan.scales and again.metas == plan.metas
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(a, b)


def test_gain_and_optimizer_are_never_silent_defaults():
    with pytest.raises(TypeError, match="activation"):
        rules.parametrize(linen_params(32), linen_shapes(8), rules.mup, key=None, optimizer="sgd")
    with pytest.raises(TypeError, match="optimizer"):
        rules.parametrize(linen_params(32), linen_shapes(8), rules.mup, key=None, activation=2.0)
    plan = rules.parametrize(
        linen_params(32), linen_shapes(8), rules.mup, key=None, optimizer="lion", activation="gelu"
    )
    assert plan.optimizer == "adam"
    assert plan.metas["Dense_0"]["kernel"].gain == pytest.approx(rules.gain("gelu"))
    with pytest.raises(rules.RuleError, match="optimizer='momentum'"):
        rules.optimizer("momentum", 0.1, plan)


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
        tx = rules.optimizer(name, 0.01, {"k": s}, eps=1e-3)
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


class Stacked(nnx.Module):
    """Layers stacked by nnx.vmap (kernel (layers, in, out)) and an nnx.Einsum projection."""

    def __init__(self, width: int, rngs: nnx.Rngs):
        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(rngs):
            return nnx.Linear(width, width, rngs=rngs)

        self.inp = nnx.Linear(4, width, rngs=rngs)
        self.layers = make(rngs)
        self.heads = nnx.Einsum("bd,dhk->bhk", (width, 2, width // 2), rngs=rngs)


def test_stacked_layers_and_einsum_kernels_get_their_real_fans():
    model = Stacked(32, nnx.Rngs(0))
    base = nnx.eval_shape(lambda: Stacked(8, nnx.Rngs(0)))
    plan = rules.parametrize(model, base, rules.mup, key=None, optimizer="adam", activation=1.0)
    stacked = plan.metas["layers"]["kernel"]
    assert model.layers.kernel.shape == (3, 32, 32)
    assert (stacked.role, stacked.fan_in, stacked.fan_out) == ("hidden", 32, 32)  # not 3 x 32
    mixed = plan.metas["heads"]["kernel"]
    assert (mixed.role, mixed.fan_in, mixed.fan_out, mixed.base_fan_in) == ("hidden", 32, 32, 8)


def test_einsum_layouts():
    from rules.layouts import einsum_layout

    assert einsum_layout("btd,dhk->bthk", 3) == ((-3,), (-2, -1))
    assert einsum_layout("bthk,hkd->btd", 3) == ((-3, -2), (-1,))
    assert einsum_layout("bhd,hdk->bhk", 3) == ((-2,), (-1,))  # h: per-head weights
    assert einsum_layout("...d,dk->...k", 2, lhs_rank=3) == ((-2,), (-1,))
    assert einsum_layout("bd,...k->bk", 2) is None
