"""lm and vit: shapes, causality, tied readout, the rule's scales on every parameter."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo
from zoo.lm import tied_multiplier
from zoo.transformer import rotary
from zoo.vit import patch_grid, to_patches

VOCAB, LENGTH = 11, 12


def lm(rule=rules.mup, seed=0, **kw):
    options = dict(width=32, depth=2, base_width=16, normalization="layer", activation="gelu")
    config = zoo.ModelConfig(input_shape=(LENGTH,), num_classes=VOCAB, **options | kw)
    return zoo.build("lm", config, rule, nnx.Rngs(seed))


def vit(shape=(8, 8, 1), rule=rules.mup, **kw):
    options = dict(width=32, depth=2, base_width=16, normalization="layer")
    config = zoo.ModelConfig(input_shape=shape, num_classes=10, **options | kw)
    return zoo.build("vit", config, rule, nnx.Rngs(0))


def tokens(batch=3, seed=1):
    return jax.random.randint(jax.random.key(seed), (batch, LENGTH), 0, VOCAB)


@nnx.jit
def call(model, x):
    """model(x) as one program: eagerly, each op of a transformer compiles on its own."""
    return model(x)


def perturb(model, amount=0.05):
    """Move every parameter off its init (norm scales start at 1, biases at 0)."""
    nnx.update(model, _moved(nnx.state(model, nnx.Param), amount))
    return model


@jax.jit  # one program: eagerly each op compiles once per parameter shape
def _moved(state, amount):
    return jax.tree.map(lambda v: v + amount * jnp.sin(jnp.arange(v.size).reshape(v.shape)), state)


@pytest.mark.parametrize("kw", [{}, dict(positions="rotary"), dict(tied=True, norm="rms")])
def test_lm_logits_have_a_vocabulary_row_per_token(kw):
    kw = {("normalization" if k == "norm" else k): v for k, v in kw.items()}
    # abstract (shapes only): these configurations are not built concretely elsewhere
    assert nnx.eval_shape(lambda: lm(**kw)(tokens())).shape == (3, LENGTH, VOCAB)


@pytest.mark.parametrize(
    "shape, kw, patches",
    [
        ((8, 8, 1), {}, 16),  # digits: 2x2 patches
        ((8, 8, 1), dict(patch_size=4, pooling="mean"), 4),
        ((28, 28, 1), dict(positions="rotary"), 16),  # mnist: 7x7 patches
        ((32, 32, 3), dict(patch_size=8), 16),  # cifar10
        ((40,), {}, 8),  # MNIST-1D: a sequence of 8 patches of 5
    ],
)
def test_vit_reads_images_and_sequences_as_patches(shape, kw, patches):
    x = jax.random.normal(jax.random.key(0), (2, *shape))
    assert nnx.eval_shape(lambda: vit(shape, **kw)(x)).shape == (2, 10)  # shapes only
    size, count, values = patch_grid(shape, kw.get("patch_size", 0))
    assert count == patches
    assert to_patches(x, size, 2 if len(shape) == 3 else 1).shape == (2, count, values)


def test_patches_are_the_image_blocks_in_row_major_order():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    patches = to_patches(x, 2, 2)
    np.testing.assert_array_equal(patches[0, 1], [2, 3, 6, 7])  # top right block
    np.testing.assert_array_equal(patches[0, 2], [8, 9, 12, 13])  # bottom left block


def test_a_patch_size_that_does_not_tile_the_image_is_refused():
    with pytest.raises(ValueError, match="does not tile"):
        patch_grid((8, 8, 1), 3)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_changing_a_future_token_leaves_earlier_logits_unchanged(positions):
    model = perturb(lm(positions=positions))
    x = tokens(batch=1)
    changed = x.at[0, 7].set((x[0, 7] + 1) % VOCAB)
    before, after = call(model, x), call(model, changed)
    np.testing.assert_allclose(before[:, :7], after[:, :7], atol=1e-6)
    # ...and does change the logits at and after it (the check is not vacuous).
    assert np.abs(before[:, 7:] - after[:, 7:]).max(axis=-1).min() > 1e-4


def test_vit_attends_both_ways():
    model = perturb(vit(pooling="mean"))
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 1))
    # the last patch changes the pooled output through every position, not only its own
    assert np.abs(call(model, x) - call(model, x.at[0, 7, 7, 0].add(1.0))).max() > 1e-4


def test_rotary_logits_depend_only_on_the_offset():
    q = jax.random.normal(jax.random.key(0), (1, 1, 1, 8))
    k = jax.random.normal(jax.random.key(1), (1, 1, 1, 8))
    length = 10
    qs, ks = (rotary(jnp.broadcast_to(a, (1, length, 1, 8))) for a in (q, k))
    dot = jnp.einsum("bihd,bjhd->ij", qs, ks)
    np.testing.assert_allclose(dot[2, 5], dot[6, 9], rtol=1e-5)
    np.testing.assert_allclose(dot[0, 0], jnp.sum(q * k), rtol=1e-5)  # position 0: no rotation


def test_tied_readout_uses_the_token_table_scaled_as_the_rules_output_layer():
    model = perturb(lm(tied=True))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    assert "output" not in params  # no readout weights of its own
    width, base = 32, 16
    # mup output init std sqrt(1/fan_in) / sqrt(n), table std 1: the product's scale
    assert model.output.readout_multiplier == pytest.approx(math.sqrt(1 / width) / math.sqrt(2))
    assert tied_multiplier(
        zoo.ModelConfig(input_shape=(LENGTH,), num_classes=VOCAB, width=width, base_width=base),
        rules.sp,
        model.input,
    ) == pytest.approx(math.sqrt(1 / width))
    x = tokens()
    h = model.trunk(model.input(x) + model.positions.rows(LENGTH))
    expected = model.output.readout_multiplier * h @ model.input.table[...].T
    np.testing.assert_allclose(call(model, x), expected, rtol=1e-5, atol=1e-6)
    # the readout's gradient reaches the table: row 0 of the logits depends on table row 0
    # even for a batch that never contains token 0
    x = x % (VOCAB - 1) + 1
    grads = nnx.jit(nnx.grad(lambda m, x: m(x)[:, :, 0].sum()))(model, x)
    assert np.abs(grads["input"]["table"][...][0]).max() > 0


def _scales(model):
    return {row["path"]: row for row in rules.layer_rows(model)}


def test_every_parameter_carries_the_rules_scales():
    for model in (lm(), lm(tied=True, normalization="rms"), vit(), vit(pooling="mean")):
        params = jax.tree.leaves(nnx.state(model, nnx.Param))
        metas = rules.param_metas(model)
        assert len(metas) == len(params)
        assert all(row["role"] != "-" for row in rules.layer_rows(model))


def test_mup_scales_of_a_transformer_four_times_its_base_width():
    # abstract: the scales are metadata, and a concrete build compiles every init shape
    model = nnx.eval_shape(lambda: lm(width=64, base_width=16, heads=4))  # n = 4, head_dim 16
    rows = _scales(model)
    assert rows["input/table"]["lr_multiplier"] == 1 and rows["input/table"]["init_std"] == 1
    assert rows["positions/table"]["lr_multiplier"] == 1
    for name in ("qkv", "proj", "fc1", "fc2"):
        assert rows[f"trunk/blocks/{name}/kernel"]["lr_multiplier"] == pytest.approx(1 / 4)
    assert rows["output/kernel"]["lr_multiplier"] == pytest.approx(1 / 4)
    assert rows["output/kernel"]["init_std"] == pytest.approx(math.sqrt(1 / 64) / 2)
    block = model.trunk.blocks
    assert block.logit_scale == pytest.approx(math.sqrt(4) / 16)  # sqrt(d0) / d
    table = rules.describe(model)
    assert "trunk/blocks/<attention logits>" in table and "0.125" in table


def test_a_fixed_head_dim_keeps_the_standard_logit_scale_under_mup():
    # 8 heads of 8; base 2 heads of 8 (abstract: attributes only)
    model = nnx.eval_shape(lambda: lm(width=64, base_width=16, head_dim=8))
    assert model.trunk.blocks.heads == 8
    assert model.trunk.blocks.logit_scale == pytest.approx(1 / math.sqrt(8))


def test_depth_rules_scale_both_branches_of_every_block():
    model = nnx.eval_shape(lambda: lm(rule=rules.depth_mup, depth=8, base_depth=2))
    assert model.trunk.blocks.residual_multiplier == pytest.approx(0.5)
    rows = _scales(model)
    # Adam: hidden 1/n from muP times 1/sqrt(L/L0) in the branches
    assert rows["trunk/blocks/fc1/kernel"]["lr_multiplier"] == pytest.approx(0.5 * 0.5)


@pytest.mark.parametrize("build", [lm, vit])
def test_mup_is_sp_at_the_base_width(build):
    x = tokens() if build is lm else jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    a = build(rule=rules.mup, width=16, base_width=16)
    b = build(rule=rules.sp, width=16, base_width=16)
    np.testing.assert_allclose(call(a, x), call(b, x), rtol=1e-6)


@pytest.mark.slow  # CI keeps test_zoo_stack.py's lm case (scanned == unrolled, with dropout)
def test_lm_scanned_and_unrolled_agree():
    scanned, unrolled = lm(dropout=0.0), lm(dropout=0.0, scan_blocks=False)
    state = nnx.state(perturb(scanned), nnx.Param)
    nnx.update(unrolled, state)
    x = tokens()
    np.testing.assert_allclose(scanned(x), unrolled(x), rtol=1e-5, atol=1e-5)
    grads = [nnx.grad(lambda m: (m(x) ** 2).mean())(m) for m in (scanned, unrolled)]
    for a, b in zip(*(jax.tree.leaves(g) for g in grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
