"""The public transfer assertions, on the zoo MLP and a user-style builder."""

import pytest
from flax import nnx

import rules
import scaling_data as data
import zoo
from scaling.testing import (
    ModelFamily,
    assert_optimal_lr_transfers,
    assert_update_sizes_transfer,
)


def mlp_family(rule, optimizer="sgd"):
    def build(width, depth, seed):
        config = zoo.ModelConfig(
            input_shape=(40,),
            num_classes=10,
            width=width,
            depth=depth,
            base_width=64,
            use_bias=False,
            optimizer=optimizer,
        )
        return zoo.build("mlp", config, rules.get(rule), nnx.Rngs(seed))

    return ModelFamily(build, input_shape=(40,), num_classes=10)


def test_mup_passes_the_width_update_check():
    ratios = assert_update_sizes_transfer(mlp_family("mup"), widths=(256, 512), depth=3, seeds=8)
    assert set(ratios) == {"input", "hidden/0", "hidden/1", "output"}


def test_sp_fails_it_naming_the_layers_that_break():
    with pytest.raises(AssertionError) as failure:
        assert_update_sizes_transfer(mlp_family("sp"), widths=(256, 512), depth=3, seeds=8)
    message = str(failure.value)
    assert "update size does not transfer across widths (256, 512)" in message
    assert "output: update size x" in message and "hidden/1" in message


def test_depth_pairs_compare_layer_groups():
    with pytest.raises(AssertionError, match="hidden \\(max\\)"):
        assert_update_sizes_transfer(mlp_family("mup"), depths=(4, 8), width=256, seeds=2)


def test_bad_pair_arguments():
    with pytest.raises(ValueError, match="give one pair"):
        assert_update_sizes_transfer(mlp_family("mup"), widths=(64, 128))


def test_optimal_lr_check_passes_for_mup_with_adam():
    dataset = data.load("mnist1d")
    ratio = assert_optimal_lr_transfers(
        mlp_family("mup", "adam"),
        dataset,
        [1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
        widths=(64, 256),
        depth=2,
        seeds=1,
        steps=60,
    )
    assert 0.5 <= ratio <= 2.0


def test_optimal_lr_check_refuses_an_optimum_at_the_grid_edge():
    # LRs far too small for Adam in 60 steps: the largest is best, which is no optimum. The
    # sizes, steps and grid length of the test above: its compiled programs are reused.
    with pytest.raises(AssertionError, match="above grid.*widen lrs"):
        assert_optimal_lr_transfers(
            mlp_family("mup", "adam"),
            data.load("mnist1d"),
            [1e-7, 2e-7, 4e-7, 8e-7, 1.6e-6],
            widths=(64, 256),
            depth=2,
            seeds=1,
            steps=60,
        )
