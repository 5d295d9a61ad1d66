"""Rules refuse models they cannot serve, in one sentence."""

import pytest
from flax import nnx

import rules
import zoo


def mlp_metas(width=64, base_width=16):
    config = zoo.ModelConfig(input_shape=(8,), num_classes=3, width=width, base_width=base_width)
    return rules.param_metas(zoo.build("mlp", config, rules.sp, nnx.Rngs(0)))


@pytest.mark.parametrize("rule", ["depth_mup", "completep"])
def test_branch_rules_need_residual_branches(rule):
    with pytest.raises(rules.RuleError, match="residual branches"):
        rules.check(rules.get(rule), mlp_metas())


@pytest.mark.parametrize("rule", ["sp", "ntk", "mup", "mean_field", "am_mup"])
def test_other_rules_fit_an_mlp(rule):
    rules.check(rules.get(rule), mlp_metas())


def test_width_rule_needs_some_dimension_with_a_base_width():
    metas = [rules.LayerMeta(role="hidden", fan_in=8, fan_out=8)]
    with pytest.raises(rules.RuleError, match="base width"):
        rules.check(rules.mup, metas)
    rules.check(rules.sp, metas)
