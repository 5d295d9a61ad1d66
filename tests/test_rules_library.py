"""Each named rule against its formula table (written out here independently)."""

import dataclasses
import math

import pytest

import rules
from rules import LayerMeta

BASE, D_IN, CLASSES, G = 64, 40, 10, 2.0


def layer(role, width, optimizer, depth=4, base_depth=4):
    """Metadata of an MLP layer at `width`, base width BASE, ReLU gain for non-input layers."""
    fans = {
        "input": (D_IN, width, None, BASE, 1.0),
        "hidden": (width, width, BASE, BASE, G),
        "output": (width, CLASSES, BASE, None, G),
        "bias": (1, width, None, BASE, G),
    }[role]
    fan_in, fan_out, base_in, base_out, gain = fans
    return LayerMeta(
        role=role,
        fan_in=fan_in,
        fan_out=fan_out,
        base_fan_in=base_in,
        base_fan_out=base_out,
        gain=gain,
        optimizer=optimizer,
        depth=depth,
        base_depth=base_depth,
    )


def expected(rule, role, width, optimizer, depth=4, base_depth=4):
    """(init_std, multiplier, lr) from Tensor Programs V, table 3 (rules/library.py)."""
    n = width / BASE
    fan_in = {"input": D_IN, "hidden": width, "output": width, "bias": 1}[role]
    gain = 1.0 if role == "input" else G
    he = math.sqrt(gain / fan_in) if role != "bias" else 0.0
    if rule == "sp":
        return he, 1.0, 1.0
    if rule == "ntk":
        if role == "bias":
            return 0.0, 1.0, 1.0
        return 1.0, math.sqrt(gain / fan_in), 1.0
    mup_lr = {
        "sgd": {"input": n, "bias": n, "hidden": 1.0, "output": 1 / n},
        "adam": {"input": 1.0, "bias": 1.0, "hidden": 1 / n, "output": 1 / n},
    }[optimizer][role]
    if rule == "mup":
        std = math.sqrt(gain / width) / math.sqrt(n) if role == "output" else he
        return std, 1.0, mup_lr
    if rule == "mean_field":
        std = 1.0 / width if role == "output" else he
        depth_factor = (depth / base_depth) ** -1.5 if role == "hidden" else 1.0
        return std, 1.0, mup_lr * depth_factor
    raise AssertionError(rule)


@pytest.mark.parametrize("rule", ["sp", "ntk", "mup", "mean_field"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("role", ["input", "hidden", "output", "bias"])
@pytest.mark.parametrize("width", [BASE, 4 * BASE])
def test_rule_matches_its_table(rule, optimizer, role, width):
    scales = rules.get(rule)(layer(role, width, optimizer))
    want = expected(rule, role, width, optimizer)
    got = (scales.init_std, scales.multiplier, scales.lr)
    assert got == pytest.approx(want, rel=1e-12), f"{rule}/{optimizer}/{role}@{width}"


@pytest.mark.parametrize("depth", [4, 16])
def test_mean_field_hidden_lr_falls_as_depth_to_minus_three_halves(depth):
    scales = rules.mean_field(layer("hidden", 256, "sgd", depth=depth, base_depth=4))
    assert scales.lr == pytest.approx(expected("mean_field", "hidden", 256, "sgd", depth, 4)[2])
    assert scales.lr == pytest.approx((depth / 4) ** -1.5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("role", ["input", "hidden", "output", "bias"])
def test_mup_equals_sp_at_base_width(optimizer, role):
    meta = layer(role, BASE, optimizer)
    assert rules.mup(meta) == rules.sp(meta)


@pytest.mark.parametrize("role", ["hidden", "output"])
def test_mup_differs_from_sp_away_from_base(role):
    meta = layer(role, 4 * BASE, "adam")
    assert rules.mup(meta) != rules.sp(meta)


def test_abc_invariants_of_mup_readout():
    """muP readout: multiplier x std ~ 1/width and multiplier x Adam LR ~ 1/width."""
    small, large = (rules.mup(layer("output", w, "adam")) for w in (BASE, 8 * BASE))
    ratio_std = large.multiplier * large.init_std / (small.multiplier * small.init_std)
    assert ratio_std == pytest.approx(1 / 8)
    assert large.lr / small.lr == pytest.approx(1 / 8)


def residual(role, width, optimizer, depth, base_depth=2, num_blocks=None):
    """A layer inside a residual branch of a model with `depth` blocks (base `base_depth`)."""
    meta = layer(role, width, optimizer, depth=depth, base_depth=base_depth)
    return dataclasses.replace(meta, in_residual_branch=True, num_blocks=num_blocks or depth)


def branch(depth, base_depth=2):
    return LayerMeta(role="branch", fan_in=1, fan_out=1, depth=depth, base_depth=base_depth)


def abc(scales):
    return scales.init_std, scales.multiplier, scales.lr, scales.weight_decay


DEPTH_RULES = {
    # name: (branch multiplier exponent alpha, Adam branch LR power, SGD branch LR power)
    "depth_mup": (0.5, -0.5, 0.0),
    "completep": (1.0, 0.0, 1.0),
}


@pytest.mark.parametrize("rule", sorted(DEPTH_RULES))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("role", ["hidden", "bias"])
@pytest.mark.parametrize("width", [BASE, 4 * BASE])
@pytest.mark.parametrize("depth", [2, 8])
def test_depth_rules_match_their_tables(rule, optimizer, role, width, depth):
    alpha, adam_power, sgd_power = DEPTH_RULES[rule]
    ratio = depth / 2
    got = rules.get(rule)(residual(role, width, optimizer, depth))
    std, _, mup_lr = expected("mup", role, width, optimizer)
    power = adam_power if optimizer == "adam" else sgd_power
    assert got.init_std == pytest.approx(std)
    assert got.lr == pytest.approx(mup_lr * ratio**power)
    assert got.multiplier == 1.0
    assert rules.get(rule)(branch(depth)).multiplier == pytest.approx(ratio**-alpha)
    if rule == "completep":  # Adam epsilon: 1/n for hidden weights, (L/L0)^-alpha in branches
        n = width / BASE if role == "hidden" else 1.0
        assert got.adam_eps == pytest.approx(ratio**-alpha / n)
    # Outside the branches the depth rules are plain muP (CompleteP's epsilon aside).
    outside = layer(role, width, optimizer, depth=depth, base_depth=2)
    assert abc(rules.get(rule)(outside)) == abc(rules.mup(outside))


@pytest.mark.parametrize("rule", ["depth_mup", "completep"])
@pytest.mark.parametrize("role", ["input", "hidden", "output", "bias"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_depth_rules_equal_mup_at_base_depth_and_sp_at_base_shape(rule, role, optimizer):
    meta = residual(role, 4 * BASE, optimizer, depth=2, base_depth=2)
    assert abc(rules.get(rule)(meta)) == abc(rules.mup(meta))
    base = residual(role, BASE, optimizer, depth=2, base_depth=2)
    assert rules.get(rule)(base) == rules.sp(base)
    assert rules.get(rule)(branch(2)).multiplier == 1.0


@pytest.mark.parametrize("role", ["input", "hidden", "output", "bias"])
@pytest.mark.parametrize("width", [BASE, 4 * BASE])
@pytest.mark.parametrize("depth", [2, 8])
def test_am_mup_matches_its_table(role, width, depth):
    meta = residual(role, width, "sgd", depth, base_depth=2, num_blocks=depth)
    got = rules.am_mup(meta)
    he = expected("sp", role, width, "sgd")[0]
    assert got.init_std == pytest.approx(he / math.sqrt(depth))  # Var = g / (K fan_in)
    assert got.lr == pytest.approx((depth / 2) ** -1.5)  # one LR for every parameter
    outside = layer(role, width, "sgd", depth=depth, base_depth=2)
    assert rules.am_mup(outside).init_std == pytest.approx(he)
    assert rules.am_mup(outside).lr == pytest.approx((depth / 2) ** -1.5)


@pytest.mark.parametrize("role", ["input", "hidden", "output", "bias"])
def test_am_mup_equals_sp_at_base_depth_with_one_block(role):
    meta = residual(role, 4 * BASE, "sgd", depth=1, base_depth=1, num_blocks=1)
    assert rules.am_mup(meta) == rules.sp(meta)


def test_completep_alpha_half_is_depth_mup_up_to_epsilon():
    for role in ("hidden", "bias"):
        meta = residual(role, 4 * BASE, "adam", depth=8)
        a, b = rules.completep_alpha(0.5)(meta), rules.depth_mup(meta)
        assert (a.init_std, a.multiplier, a.lr) == pytest.approx((b.init_std, b.multiplier, b.lr))
