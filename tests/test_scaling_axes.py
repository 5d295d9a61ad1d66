"""Transfer along training length, batch size and weight decay (scaling/transfer_axes.py and
its parts): schedules stretched to a length, grid points along axes, the 2-D optimum against
a brute-force argmin, the corrections' formulas, weight decay as a member hyperparameter
against a single unvmapped run, and the command line (runs and one-line refusals)."""

import json

import numpy as np
import pytest

from scaling import corrections, optimum, optimum2d
from scaling.point import GridPoint, Schedule, along
from scaling.setup import geometric_grid

# -- schedules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["cosine", "linear"])
@pytest.mark.parametrize("warmup", [0, 7])
def test_schedule_to_the_end_is_the_training_schedule(shape, warmup):
    """Decay over all steps after the warm-up: the same factors as train.py's schedules."""
    from scaling_training.schedules import lr_factor

    steps = 50
    ours = Schedule(shape, warmup, None, "steps").factor(steps)
    theirs = lr_factor(shape, steps, warmup)
    counts = np.arange(steps)
    assert np.asarray(ours(counts)) == pytest.approx(np.asarray(theirs(counts)), abs=1e-6)


def test_fractions_stretch_and_steps_stay():
    frac, absolute = Schedule("cosine", 0.1, 0.2, "fraction"), Schedule("cosine", 10, 20, "steps")
    assert [frac.warmup_steps(s) for s in (100, 800)] == [10, 80]
    assert [frac.decay_steps(s) for s in (100, 800)] == [20, 160]
    assert [absolute.warmup_steps(s) for s in (100, 800)] == [10, 10]
    assert [absolute.decay_steps(s) for s in (100, 800)] == [20, 20]
    assert frac.to_json(800)["warmup_steps"] == 80 and frac.to_json(800)["unit"] == "fraction"


def test_warmup_stable_decay_factors_in_numpy():
    """Warm-up 4 steps, stable, linear decay over the last 10: computed independently."""
    steps, sched = 30, Schedule("linear", 4, 10, "steps")
    got = np.asarray(sched.factor(steps)(np.arange(steps)))
    expected = np.ones(steps)
    expected[:4] = (np.arange(4) + 1) / 4
    expected[20:] = 1 - (np.arange(20, 30) - 20) / 10
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "schedule, steps, match",
    [
        (Schedule("cosine", 50, None, "steps"), 20, "does not fit 20 steps"),
        (Schedule("linear", 10, 15, "steps"), 20, "does not fit"),
        (Schedule("constant", 0, 0.5), 20, "no decay"),
        (Schedule("cosine", 1.5), 20, "<= 1"),
        (Schedule("wsd"), 20, "unknown schedule"),
        (Schedule("cosine", 2.5, None, "steps"), 20, "whole numbers"),
    ],
)
def test_schedule_that_does_not_fit_is_refused(schedule, steps, match):
    with pytest.raises(ValueError, match=match):
        schedule.check(steps)


# -- points along axes -------------------------------------------------------------------------


def test_points_along_batch_keep_examples_unless_asked():
    base = GridPoint(64, 3, 1000, 32, "adam")
    points = along(base, {"batch_size": [32, 64, 256]})
    assert [(p.batch_size, p.steps) for p in points] == [(32, 1000), (64, 500), (256, 125)]
    same = along(base, {"batch_size": [32, 64]}, batch_keeps="steps")
    assert [p.steps for p in same] == [1000, 1000]
    both = along(base, {"width": [64, 256], "steps": [1000, 4000]})
    assert [(p.width, p.steps, p.batch_size) for p in both] == [(64, 1000, 32), (256, 4000, 32)]
    with pytest.raises(ValueError, match="same number"):
        along(base, {"width": [64, 128], "steps": [1, 2, 3]})


# -- corrections -------------------------------------------------------------------------------


def test_corrections_are_their_formulas():
    proxy, target = GridPoint(64, 3, 250, 32, "adam"), GridPoint(64, 3, 2000, 128, "adam")
    horizon = corrections.parse("horizon:0.3")
    assert horizon.factor(proxy, target) == pytest.approx(8**-0.3)
    assert corrections.parse("batch:sqrt").factor(proxy, target) == pytest.approx(2.0)
    assert corrections.parse("batch:linear").factor(proxy, target) == pytest.approx(4.0)
    both = [horizon, corrections.parse("batch:sqrt")]
    assert corrections.combined_factor(both, proxy, target) == pytest.approx(2 * 8**-0.3)
    assert corrections.parse("batch:sqrt").name == "batch:sqrt" and horizon.name == "horizon:0.3"
    for bad in ("horizon", "width:2", "horizon:abc"):
        with pytest.raises(ValueError):
            corrections.parse(bad)


# -- the 2-D optimum ---------------------------------------------------------------------------

LRS, WDS = geometric_grid(1e-4, 1e-1, 13), geometric_grid(1e-3, 10.0, 11)


def bowl(lr_center, wd_center, tilt=0.0):
    x = np.log2(LRS)[:, None] - np.log2(lr_center)
    y = np.log2(WDS)[None, :] - np.log2(wd_center)
    return 1.0 + 0.3 * x**2 + 0.2 * y**2 + tilt * x * y


def test_2d_optimum_of_a_separable_bowl_is_its_center():
    found = optimum2d.find(LRS, WDS, bowl(3.3e-3, 0.07))
    assert found.found
    assert np.log2(found.lr) == pytest.approx(np.log2(3.3e-3), abs=1e-6)
    assert np.log2(found.weight_decay) == pytest.approx(np.log2(0.07), abs=1e-6)


def test_2d_optimum_matches_a_brute_force_argmin_on_random_surfaces():
    """Float64 numpy: the grid argmin (np.argmin over the flattened surface) is where the
    optimum starts; refinement stays within one grid step of it on each axis, and off-grid
    and diverged cells are reported as in 1-D."""
    rng = np.random.default_rng(0)
    step_lr, step_wd = np.log2(LRS[1] / LRS[0]), np.log2(WDS[1] / WDS[0])
    for _ in range(50):
        surface = bowl(10 ** rng.uniform(-4, -1), 10 ** rng.uniform(-3, 1), rng.uniform(-0.1, 0.1))
        surface += rng.normal(0, 0.05, surface.shape)
        surface[rng.random(surface.shape) < 0.05] = np.inf
        i, j = np.unravel_index(np.argmin(surface), surface.shape)
        found = optimum2d.find(LRS, WDS, surface)
        assert found.loss == surface[i, j]
        assert abs(np.log2(found.lr / LRS[i])) <= step_lr + 1e-9
        assert abs(np.log2(found.weight_decay / WDS[j])) <= step_wd + 1e-9
        assert found.where_lr == (
            optimum.BELOW if i == 0 else optimum.ABOVE if i == LRS.size - 1 else optimum.INSIDE
        )
        assert found.where_weight_decay == (
            optimum.BELOW if j == 0 else optimum.ABOVE if j == WDS.size - 1 else optimum.INSIDE
        )
        if found.where_lr != optimum.INSIDE:
            assert found.lr == LRS[i]
    assert optimum2d.find(LRS, WDS, np.full((13, 11), np.inf)).where_lr == optimum.DIVERGED


def test_2d_seed_scatter_per_coordinate():
    optima = [optimum2d.find(LRS, WDS, bowl(1e-3 * 2**k, 0.1)) for k in (0, 1, 2)]
    spread = optimum2d.scatter(optima)
    assert spread["lr"] == pytest.approx(1.0, abs=1e-6)
    assert spread["weight_decay"] == pytest.approx(0.0, abs=1e-6)


def test_exponent_over_per_size_grids():
    """Optima 0.02 x (S / 100)^-0.4 on a grid per size (one of them widened)."""
    from scaling import transfer_axes

    sizes = [100, 200, 400, 800]
    grids = [LRS] * 3 + [optimum.widened(LRS, optimum.BELOW, 3)]
    tails = []
    for s, g in zip(sizes, grids):
        center = 0.02 * (s / 100) ** -0.4
        tails.append([1 + 0.3 * (np.log2(g) - np.log2(center)) ** 2] * 3)
    law = transfer_axes.exponent(sizes, grids, tails)
    assert law["exponent"] == pytest.approx(-0.4, abs=1e-6)
    assert law["coefficient"] * 100**-0.4 == pytest.approx(0.02, rel=1e-6)
    assert law["ci"] == pytest.approx([-0.4, -0.4], abs=1e-6)


# -- weight decay and schedules as members -----------------------------------------------------


def test_swept_weight_decay_and_schedule_match_single_runs():
    """Members (lr, wd) of one compiled grid against each trained alone with its own
    optimizer (weight decay fixed in the optimizer, schedule from scaling_training)."""
    import optax

    import rules
    import scaling_data as data
    from scaling.grid import GridSpec, train_grid
    from scaling.setup import ProbeModel
    from scaling_training import engine
    from scaling_training.schedules import with_schedule_and_clipping

    spec, dataset, steps = ProbeModel.of(optimizer="adam", base_width=16), data.load("mnist1d"), 12
    lrs, wds = [0.01, 0.01, 0.03], [0.0, 0.5, 2.0]
    schedule = Schedule("cosine", 3, None, "steps")
    grid = train_grid(GridSpec(spec, dataset, 1, steps, 32, "adam"), 16, 2, lrs, score=False,
                      schedule=schedule, weight_decays=wds)  # fmt: skip
    for j, (lr, wd) in enumerate(zip(lrs, wds)):
        model = spec.build(16, 2, 0)
        graphdef, params, rest = engine.split_model(model)
        tx = rules.optimizer("adam", lr, rules.param_scales(model), weight_decay=wd, inject=True)
        tx = with_schedule_and_clipping(tx, "cosine", steps, 3)
        opt_state = tx.init(params)
        chunk = engine.make_train_chunk(graphdef, tx)
        x, y = engine.chunk_batches(dataset, 32, steps, 0, 0)
        *_, losses, _ = chunk(params, rest, opt_state, x, y)
        tail = np.asarray(losses)[-max(1, steps // 10) :].mean()
        assert grid.tail_loss[0, j] == pytest.approx(tail, rel=1e-5)
    assert grid.tail_loss[0, 0] != pytest.approx(grid.tail_loss[0, 1], rel=1e-6)
    assert isinstance(optax.GradientTransformation, type)


# -- the command line --------------------------------------------------------------------------

TINY = ["--model=mlp", "--rule=mup", "--widths=16", "--depths=2", "--seeds=2", "--optimizer=adam"]
ONE_SEED = [a if a != "--seeds=2" else "--seeds=1" for a in TINY]


def _main(args):
    from absl import flags

    from scaling.__main__ import main

    flags.FLAGS.unparse_flags()
    try:
        main(flags.FLAGS(["scaling", *args]))
    finally:
        flags.FLAGS.unparse_flags()


def test_steps_axis_with_a_correction_end_to_end(tmp_path, capsys):
    _main(ONE_SEED + ["--axis=steps", "--lengths=10,20,40", "--lrs=0.003,0.01,0.03,0.1",
                  "--schedule=cosine", "--warmup=0.1", "--correction=horizon:0.3",
                  f"--out={tmp_path}", "transfer_error"])  # fmt: skip
    record = json.loads((tmp_path / "transfer_error.json").read_text())
    assert (tmp_path / "transfer_error.png").stat().st_size > 0
    proxy, targets = record["proxy"], record["targets"]
    assert [proxy["steps"]] + [t["steps"] for t in targets] == [10, 20, 40]
    assert [t["schedule"]["warmup_steps"] for t in targets] == [2, 4]
    assert proxy["schedule"]["unit"] == "fraction" and proxy["schedule"]["shape"] == "cosine"
    for t in targets:
        assert set(t["choices"]) == {"proxy", "horizon:0.3"}
        factor = (t["steps"] / 10) ** -0.3
        assert t["choices"]["horizon:0.3"]["value"] == pytest.approx(proxy["lr_opt"] * factor)
        if t["where"] == proxy["where"] == "inside":
            error = abs(np.log2(proxy["lr_opt"] * factor / t["lr_opt"]))
            assert t["choices"]["horizon:0.3"]["transfer_error_log2"] == pytest.approx(error)
    assert "fit" in record and "horizon:0.3: error log2" in capsys.readouterr().out


@pytest.mark.parametrize("tune", ["weight_decay", "both"])
def test_weight_decay_tuning_end_to_end(tmp_path, tune):
    args = ONE_SEED + ["--axis=batch_size", "--batch_sizes=16,32", "--steps=20",
                   "--lrs=0.003,0.01,0.03", "--weight_decays=0.01,0.1,1,10", f"--tune={tune}",
                   "--lr=0.01", "--objective=test", f"--out={tmp_path}",
                   "transfer_error"]  # fmt: skip
    _main(args)
    record = json.loads((tmp_path / "transfer_error.json").read_text())
    proxy, (target,) = record["proxy"], record["targets"]
    assert (proxy["batch_size"], proxy["steps"], target["batch_size"], target["steps"]) == (
        16, 20, 32, 10,
    )  # fmt: skip
    assert record["tune"] == tune and record["objective"] == "test"
    loss = np.asarray(proxy["loss"], float)
    assert loss.shape == ((1, 4) if tune == "weight_decay" else (1, 3, 4))
    if tune == "both":
        best = optimum2d.find([0.003, 0.01, 0.03], [0.01, 0.1, 1, 10], loss[0])
        assert proxy["lr_opt"] == pytest.approx(best.lr)
        assert proxy["weight_decay_opt"] == pytest.approx(best.weight_decay)


def test_combined_width_and_steps_target_through_transfer(tmp_path):
    """`transfer` takes the same axes (and reports the same record)."""
    _main(["--model=mlp", "--rule=mup", "--widths=16,32", "--depths=2", "--seeds=1",
           "--optimizer=adam", "--axis=width,steps", "--lengths=10,20", "--lrs=0.003,0.01,0.03",
           f"--out={tmp_path}", "transfer"])  # fmt: skip
    record = json.loads((tmp_path / "transfer.json").read_text())
    assert record["axis"] == ["width", "steps"]
    assert (record["targets"][0]["width"], record["targets"][0]["steps"]) == (32, 20)


def test_default_axis_keeps_the_old_record(tmp_path):
    """--axis=width given explicitly is the old probe: the same JSON keys as without it."""
    common = TINY[:2] + ["--widths=16,32", "--depths=2", "--seeds=1", "--optimizer=adam",
                         "--steps=3", "--lrs=0.003,0.01,0.03"]  # fmt: skip
    _main(common + [f"--out={tmp_path / 'a'}", "transfer_error"])
    _main(common + ["--axis=width", f"--out={tmp_path / 'b'}", "transfer_error"])
    a = json.loads((tmp_path / "a" / "transfer_error.json").read_text())
    b = json.loads((tmp_path / "b" / "transfer_error.json").read_text())
    for record in (a, b):
        for entry in [record["proxy"], *record["targets"]]:
            entry.pop("seconds")
        record.pop("proxy_sweep_seconds")
    assert a == b and a["axis"] == "width" and "choices" not in a["targets"][0]


BAD = [
    (["--axis=length"], "--axis: unknown axis 'length'"),
    (["--axis=steps", "--lengths=20"], "--lengths: --axis=steps needs at least two values"),
    (["--lengths=20,40"], "--lengths: given but steps is not in --axis"),
    (
        [
            "--axis=steps",
            "--lengths=20,40",
            "--schedule=cosine",
            "--warmup=30",
            "--schedule_unit=steps",
        ],
        "--schedule: the schedule does not fit 20 steps",
    ),  # fmt: skip
    (["--axis=width,steps", "--widths=16,32", "--lengths=10,20,40"], "--axis: every swept axis"),
    (["--tune=both", "--weight_decays=0.1,1"], "--weight_decays: a weight-decay grid needs"),
    (["--tune=weight_decay", "--weight_decays=0,1,2"], "--weight_decays: must be distinct"),
    (["--correction=width:2"], "--correction: unknown correction 'width:2'"),
    (["--tune=banana"], "--tune"),
    (["--axis=depth", "--widths=16,32"], "--axis: --axis=depth sweeps --depths"),
    (["--tune=weight_decay", "--weight_decay_mode=decoupled"], "--weight_decay_mode: unknown mode"),
    (
        [
            "--tune=weight_decay",
            "--weight_decay_mode=independent",
            "--weight_decay_width=completep",
        ],
        "--weight_decay_width: independent decay scales with width as one of: constant, inverse",
    ),  # fmt: skip
    (["--weight_decay_mode=independent"], "--weight_decay_mode: no weight decay to act on"),
]


def test_bad_axis_flags_are_one_line_and_write_nothing(tmp_path):
    """Each case as tests/scripts/run_cli_cases.py runs it (the CLI's `main`, its status,
    stderr and folder before and after), here in the test's own process as `_main` above:
    no interpreter to start."""
    import os
    import sys

    from cli_cases import RUNNER, one_line

    sys.path.insert(0, os.path.dirname(RUNNER))
    try:
        import run_cli_cases as runner
    finally:
        sys.path.remove(os.path.dirname(RUNNER))
    import scaling.__main__ as cli

    for i, (args, expected) in enumerate(BAD):
        out = tmp_path / str(i)
        axis = next((a for a in args if a.startswith("--axis=")), "--axis=width")
        given = any(a.startswith("--widths") for a in args)
        widths = [] if given else ["--widths=16,32" if "width" in axis else "--widths=16"]
        argv = ["scaling", "transfer_error", "--model=mlp", f"--out={out}", *widths, *args]
        try:
            status, stderr, _ = runner.run_case(cli, cli.parse, argv)
        finally:
            from absl import flags

            flags.FLAGS.unparse_flags()
        line = one_line({"status": status, "stderr": stderr})
        assert expected in line, line
        assert not out.exists()


def test_members_of_a_2d_grid_are_lr_major_then_extras():
    """Member j of a (2 LR x 3 wd) grid is (lrs[j // 3], wds[j % 3]): the reshape to
    [lr, wd] in `transfer_axes.sweep` relies on it."""
    from scaling.transfer_axes import Tuning

    tuning = Tuning("both", lrs=(1.0, 2.0), weight_decays=(0.1, 0.2, 0.3))
    lrs, wds = tuning.members(extras=[(5.0, 0.5)])
    assert lrs == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 5.0]
    assert wds == [0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.5]
    grid = np.arange(6).reshape(2, 3)
    assert [(lrs[k], wds[k]) for k in grid[1]] == [(2.0, 0.1), (2.0, 0.2), (2.0, 0.3)]
    assert Tuning("lr", lrs=(1.0, 2.0)).members([3.0]) == ([1.0, 2.0, 3.0], None)
    assert Tuning("lr", lrs=(1.0,), weight_decay=0.1).members() == ([1.0], [0.1])
    assert Tuning("weight_decay", weight_decays=(0.1, 0.2), lr=0.5).members() == (
        [0.5, 0.5],
        [0.1, 0.2],
    )
