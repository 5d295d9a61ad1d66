"""--weight_decay_mode / --weight_decay_width of `python -m scaling transfer_error`: the flags
reach the grid's optimizer (scaling/grid.py), whose decay matches a hand computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaling.grid import GridSpec, grid_optimizer, train_grid
from scaling.setup import ProbeModel

# The probe MLP at width 64 over base 16: hidden and readout kernels have fan-in multiplier
# m = 4, and muP's Adam LR 1/m on them; the input kernel (fan-in 40, fixed) has 1 and 1.
HIDDEN_LR = {"input": 1.0, "hidden": 0.25, "output": 0.25}
LR, WD = 0.01, 0.3
# Decay per step, p -> p (1 - c), of each mode and width scaling (rules/axes.py):
EXPECTED = {
    ("coupled", "completep"): lambda layer: LR * WD,  # lr x wd at every width
    ("coupled", "constant"): lambda layer: LR * WD * HIDDEN_LR[layer],  # x the layer's LR
    ("independent", "constant"): lambda layer: WD,  # wd, no LR factor
    ("independent", "inverse_width"): lambda layer: WD * HIDDEN_LR[layer],  # wd / m
}


def _spec():
    return ProbeModel.of(optimizer="adam", base_width=16)


@pytest.mark.parametrize("mode, scaling", list(EXPECTED))
def test_one_step_of_decay_alone_is_the_hand_computed_one(mode, scaling):
    """A zero gradient leaves Adam's direction at 0, so one step is the decay alone."""
    import jax
    import optax

    import scaling_data as data
    from scaling_training import engine

    model = _spec().build(64, 2, 0)
    grid = GridSpec(_spec(), data.load("mnist1d"), 1, 1, 8, "adam", mode, scaling)
    tx = grid_optimizer(grid, model, LR, [WD])
    _, params, _ = engine.split_model(model)
    state = tx.init(params)
    zeros = jax.tree.map(np.zeros_like, params)
    updates, _ = tx.update(zeros, state, params)
    new = optax.apply_updates(params, updates)
    flat_new = jax.tree_util.tree_leaves_with_path(new)
    flat_old = dict(jax.tree_util.tree_leaves_with_path(params))
    assert {jax.tree_util.keystr(p[:1]) for p, _ in flat_new} == {"['hidden']", "['input']",
                                                                  "['output']"}  # fmt: skip
    for path, value in flat_new:
        layer = path[0].key
        old = np.asarray(flat_old[path], np.float64)
        expected = old * (1 - EXPECTED[(mode, scaling)](layer))
        np.testing.assert_allclose(np.asarray(value, np.float64), expected, rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize(
    "independent_width, coupled_width", [("constant", "completep"), ("inverse_width", "constant")]
)
def test_independent_decay_is_the_coupled_one_at_wd_over_lr(independent_width, coupled_width):
    """At a constant LR, independent (lr, wd) and coupled (lr, wd / lr) take the same steps
    (the check of the former experiments/axes_wd_independent.py); under muP's Adam LRs the
    independent 1/width scaling is the coupled "constant" one (torch AdamW). Coupled (lr, wd)
    at the same numbers does not."""
    import scaling_data as data

    dataset, lr, wds = data.load("mnist1d"), 0.004, [0.002, 0.008]

    def losses(mode, width, decays):
        grid = GridSpec(_spec(), dataset, 1, 30, 64, "adam", mode, width)
        return train_grid(grid, 32, 2, [lr, lr], score=False, weight_decays=decays).tail_loss[0]

    independent = losses("independent", independent_width, wds)
    coupled = losses("coupled", coupled_width, [w / lr for w in wds])
    np.testing.assert_allclose(independent, coupled, rtol=1e-4)
    same_numbers = losses("coupled", coupled_width, wds)
    assert np.all(np.abs(independent / same_numbers - 1) > 1e-4)


def test_the_flags_reach_the_optimizer_end_to_end(tmp_path):
    """The same command with the two modes: different losses, each recorded with its mode."""
    from test_scaling_axes import ONE_SEED, _main

    records = {}
    for mode, scaling in (("coupled", ""), ("independent", "inverse_width")):
        out = tmp_path / mode
        extra = [f"--weight_decay_width={scaling}"] if scaling else []
        _main(ONE_SEED + ["--widths=16,32", "--steps=15", "--lr=0.01", "--tune=weight_decay",
                          "--weight_decays=0.01,0.1,1", f"--weight_decay_mode={mode}", *extra,
                          f"--out={out}", "transfer_error"])  # fmt: skip
        records[mode] = json.loads((out / "transfer_error.json").read_text())
    coupled, independent = records["coupled"], records["independent"]
    assert (coupled["weight_decay_mode"], coupled["weight_decay_width"]) == ("coupled", "completep")
    assert (independent["weight_decay_mode"], independent["weight_decay_width"]) == (
        "independent", "inverse_width",
    )  # fmt: skip
    a, b = (dict(zip(r["proxy"]["weight_decays"], r["proxy"]["loss"][0])) for r in records.values())
    common = [wd for wd in (0.01, 0.1, 1.0) if wd in a and wd in b]  # the grid may widen
    assert common and all(abs(a[wd] - b[wd]) > 1e-6 for wd in common)
