"""Composition, the registry, metadata validation and gains."""

import math

import pytest

import rules
from rules import LayerMeta, Scales


def hidden(width=256, base=64, **kw):
    return LayerMeta(
        role="hidden",
        fan_in=width,
        fan_out=width,
        base_fan_in=base,
        base_fan_out=base,
        gain=2.0,
        **kw,
    )


def test_compose_applies_left_to_right_and_flattens_rules():
    double_lr = rules.named("double_lr")(lambda m, s: s.replace(lr=2 * s.lr))
    rule = rules.compose(rules.mup, double_lr, rules.depth_lr(-1.0))
    meta = hidden(depth=8, base_depth=2, optimizer="sgd")
    assert rule(meta).lr == pytest.approx(rules.mup(meta).lr * 2 * (8 / 2) ** -1.0)
    assert rule.pipeline == (
        "he_init > mup_readout_init > mup_lr > mup_attention > double_lr > depth_lr(-1)"
    )
    assert rule.name == "mup+double_lr+depth_lr(-1)"


def test_compose_rejects_non_callables():
    with pytest.raises(TypeError, match="rules or transforms"):
        rules.compose(rules.sp, 3)


def test_rule_starts_from_given_scales():
    assert rules.compose()(hidden(), Scales(lr=0.5)).lr == 0.5


def test_user_rule_registers_and_is_found_by_name():
    rule = rules.compose(rules.sp, rules.depth_lr(-0.5), name="test_sp_sqrt_depth")
    rules.register(rule)
    assert rules.get("test_sp_sqrt_depth") is rule
    assert "test_sp_sqrt_depth" in rules.names()
    with pytest.raises(ValueError, match="already registered"):
        rules.register(rules.compose(rules.sp, name="test_sp_sqrt_depth"))


def test_unknown_rule_lists_choices():
    with pytest.raises(ValueError, match="choose one of: .*mup"):
        rules.get("nope")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"role": "middle"}, "role must be one of"),
        ({"fan_in": 0}, "fan_in and fan_out"),
        ({"optimizer": "lion"}, "optimizer family"),
        ({"depth": 0}, "depth and base_depth"),
    ],
)
def test_layer_meta_rejects_bad_values(kwargs, match):
    args = dict(role="hidden", fan_in=4, fan_out=4) | kwargs
    with pytest.raises(ValueError, match=match):
        LayerMeta(**args)


def test_multipliers_are_relative_to_base():
    meta = hidden(width=256, base=64, depth=12, base_depth=3)
    assert (meta.fan_in_multiplier, meta.fan_out_multiplier, meta.depth_multiplier) == (4, 4, 4)
    assert LayerMeta(role="input", fan_in=40, fan_out=8).fan_in_multiplier == 1.0


def test_gains_keep_second_moment():
    assert rules.gain("relu") == 2.0 and rules.gain("linear") == 1.0
    # E[gelu(z)^2] = 0.4252 and E[tanh(z)^2] = 0.3943 for z ~ N(0, 1) (numerical integration).
    assert rules.gain("gelu") == pytest.approx(1 / 0.42522, rel=1e-3)
    assert rules.gain("tanh") == pytest.approx(1 / 0.39429, rel=1e-3)
    assert math.isfinite(rules.gain("gelu"))
    with pytest.raises(ValueError, match="choose one of"):
        rules.gain("swish")
