"""Readings of AM-muP for residual models: which branch layers the init scales, which L counts."""

import math

import pytest
from flax import nnx

import rules
import zoo
from rules.meta import LayerMeta
from rules.transforms import network_depth_lr, residual_he_init_last


def branch_meta(index, layers=2, blocks=9, base=3):
    return LayerMeta("hidden", 72, 8, depth=blocks, base_depth=base, num_blocks=blocks,
                     in_residual_branch=True, gain=2.0, branch_index=index,
                     branch_layers=layers)  # fmt: skip


def test_branch_position_in_metadata():
    assert branch_meta(1).last_in_branch and not branch_meta(0).last_in_branch
    assert not LayerMeta("hidden", 4, 4).last_in_branch


def test_only_the_branch_last_layer_is_scaled_by_blocks():
    he = math.sqrt(2.0 / 72)
    first, last = (rules.get("am_mup_last")(branch_meta(i)).init_std for i in (0, 1))
    assert first == pytest.approx(he) and last == pytest.approx(he / 3)
    both = [rules.get("am_mup")(branch_meta(i)).init_std for i in (0, 1)]
    assert both == pytest.approx([he / 3, he / 3])
    # Position unknown (a one-layer branch): treated as the last layer.
    unknown = LayerMeta("hidden", 72, 8, num_blocks=9, in_residual_branch=True, gain=2.0)
    assert residual_he_init_last(unknown, rules.Scales(init_std=1.0)).init_std == pytest.approx(
        1 / 3
    )


def test_depth_counts_of_the_lr_factor():
    meta = branch_meta(0, blocks=27, base=3)  # ResNet-56 against ResNet-8
    assert rules.get("am_mup")(meta).lr == pytest.approx(9**-1.5)
    assert rules.get("am_mup_network")(meta).lr == pytest.approx(7**-1.5)  # (2K + 2) = 56 vs 8
    assert network_depth_lr(-1.5)(meta, rules.Scales()).lr == pytest.approx(7**-1.5)
    assert (
        rules.get("residual_he")(meta).lr == 1.0 and rules.get("residual_he_last")(meta).lr == 1.0
    )


def test_zoo_residual_models_say_where_each_weight_sits():
    config = zoo.ModelConfig(input_shape=(8, 8, 1), num_classes=10, width=4, depth=8)
    metas = rules.param_metas(zoo.build("resnet", config, rules.get("am_mup_last"), nnx.Rngs(0)))
    branch = [m for m in metas if m.role == "hidden" and m.in_residual_branch]
    assert sorted({m.branch_index for m in branch}) == [0, 1]
    assert all(m.branch_layers == 2 for m in branch)
    shortcuts = [m for m in metas if m.role == "hidden" and not m.in_residual_branch]
    assert shortcuts and all(m.branch_index is None for m in shortcuts)
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=8, depth=3)
    metas = rules.param_metas(zoo.build("resmlp", config, rules.get("am_mup_last"), nnx.Rngs(0)))
    assert sorted({m.branch_index for m in metas if m.role == "hidden"}) == [0, 1]
