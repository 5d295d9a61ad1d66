"""The optimum finder on curves with known minima, and one small transfer-error run."""

import json

import numpy as np
import pytest

from scaling import optimum
from scaling.setup import geometric_grid


def parabola(lrs, center, curvature=0.3, floor=0.5):
    return floor + curvature * (np.log2(lrs) - np.log2(center)) ** 2


GRID = geometric_grid(1e-3, 1.0, 21)  # 2^(1/2) spacing, roughly


@pytest.mark.parametrize("center", [0.0123, 0.05, 0.3])
def test_parabola_minimum_found_between_grid_points(center):
    found = optimum.find(GRID, parabola(GRID, center))
    assert found.where == optimum.INSIDE
    assert np.log2(found.lr) == pytest.approx(np.log2(center), abs=1e-6)
    assert found.loss == pytest.approx(parabola(GRID, center).min())


def test_asymmetric_curve_refined_within_a_grid_step():
    """A loss wall on the right (divergence) pulls a 5-point fit; it stays within one step."""
    losses = parabola(GRID, 0.05) + np.where(GRID > 0.1, 5 * (np.log2(GRID / 0.1)) ** 2, 0.0)
    found = optimum.find(GRID, losses)
    step = np.log2(GRID[1] / GRID[0])
    assert abs(np.log2(found.lr / 0.05)) < step


def test_edge_minimum_is_reported_off_the_grid():
    below = optimum.find(GRID, parabola(GRID, 1e-5))
    above = optimum.find(GRID, parabola(GRID, 10.0))
    assert (below.where, below.lr) == (optimum.BELOW, GRID[0])
    assert (above.where, above.lr) == (optimum.ABOVE, GRID[-1])
    assert not below.found and not above.found
    wider = optimum.widened(GRID, optimum.ABOVE, 3)
    assert len(wider) == len(GRID) + 3 and wider[-1] == pytest.approx(
        GRID[-1] * (GRID[1] / GRID[0]) ** 3
    )


def test_diverged_lrs_and_seed_mean():
    losses = np.array([[1.0, 0.5, 0.7, np.inf], [1.2, 0.6, 0.5, 0.9]])
    curve = optimum.seed_mean(losses)
    assert curve[:3] == pytest.approx([1.1, 0.55, 0.6]) and curve[3] == np.inf
    assert optimum.find([1, 2, 4, 8], [np.inf] * 4).where == optimum.DIVERGED
    with pytest.raises(ValueError, match="increasing"):
        optimum.find([1, 4, 2], [1, 0, 1])


def test_seed_scatter_is_the_std_of_per_seed_optima_in_log2():
    optima = [optimum.find(GRID, parabola(GRID, c)) for c in (0.01, 0.02, 0.04)]
    assert optimum.scatter_log2(optima) == pytest.approx(1.0, abs=1e-6)
    assert optimum.scatter_log2(optima[:1]) is None


def test_interpolate_in_log2_lr():
    assert optimum.interpolate([1, 4], [1.0, 3.0], 2.0) == pytest.approx(2.0)
    assert optimum.interpolate([1, 4], [1.0, 3.0], 8.0) == np.inf


def test_transfer_error_end_to_end(tmp_path, capsys):
    """A tiny MLP width sweep through the command line: JSON, PNG and a table."""
    from absl import flags

    from scaling.__main__ import main

    args = ["scaling", "--model=mlp", "--rule=mup", "--widths=16,64", "--depths=2",
            "--seeds=2", "--steps=30", "--optimizer=adam", "--lrs=0.003,0.01,0.03,0.1,0.3",
            f"--out={tmp_path}", "transfer_error"]  # fmt: skip
    flags.FLAGS.unparse_flags()
    main(flags.FLAGS(args))
    flags.FLAGS.unparse_flags()
    record = json.loads((tmp_path / "transfer_error.json").read_text())
    assert (tmp_path / "transfer_error.png").stat().st_size > 0
    proxy, (target,) = record["proxy"], record["targets"]
    assert proxy["width"] == 16 and target["width"] == 64
    assert len(proxy["loss"]) == 2 and len(proxy["loss"][0]) == len(proxy["lrs"]) >= 5
    assert record["proxy_sweep_seconds"] > 0
    for entry in (proxy, target):  # the seed scatter of both optima, from per-seed optima
        found = [lr for lr, w in zip(entry["lr_opt_per_seed"], entry["where_per_seed"])
                 if w == "inside"]  # fmt: skip
        expected = np.std(np.log2(found), ddof=1) if len(found) > 1 else None
        assert entry["seed_scatter_log2"] == pytest.approx(expected)
    if proxy["where"] == target["where"] == "inside":
        expected = abs(np.log2(proxy["lr_opt"] / target["lr_opt"]))
        assert target["transfer_error_log2"] == pytest.approx(expected)
        assert target["loss_penalty"] is not None
    table = capsys.readouterr().out
    assert "transfer error (log2)" in table and "proxy sweep:" in table


def test_maxlr_seed_optima_are_each_seeds_largest_success():
    from scaling.maxlr import seed_optima

    tried = [(0.1, [0.95, 0.5]), (0.2, [0.92, 0.91]), (0.4, [0.3, 0.95]), (0.8, [0.1, 0.1])]
    assert seed_optima(tried, 0.9) == [0.2, 0.4]
    assert seed_optima([(0.1, [0.1])], 0.9) == [None]


def test_probe_scatter_is_log2_std_over_seeds():
    from scaling.optimum import log2_scatter

    assert log2_scatter([1.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert log2_scatter([1.0, None, float("nan")]) is None


def test_transfer_exponent_of_seed_mean_optima_with_seed_bootstrap():
    """Optima at 0.1 x size^-0.5 with seed noise: the fit recovers -0.5 and brackets it;
    an optimum off the grid gives no exponent rather than an edge value."""
    from scaling import transfer

    rng = np.random.default_rng(0)
    sizes = [64, 256, 1024]

    def tails(center):
        return [parabola(GRID, center * 2 ** rng.normal(0, 0.3)) for _ in range(4)]

    exact = transfer.exponent(sizes, GRID, [[parabola(GRID, 0.1 * (s / 64) ** -0.5)] * 3
                                            for s in sizes])  # fmt: skip
    assert exact["exponent"] == pytest.approx(-0.5, abs=1e-6)
    assert exact["ci"] == pytest.approx([-0.5, -0.5], abs=1e-6)  # identical seeds: no spread
    law = transfer.exponent(sizes, GRID, [tails(0.1 * (s / 64) ** -0.5) for s in sizes])
    assert law["exponent"] == pytest.approx(-0.5, abs=0.15)
    assert law["ci"][0] < law["exponent"] < law["ci"][1] and law["ci"][1] - law["ci"][0] < 0.5
    off = transfer.exponent(sizes, GRID, [tails(0.1), tails(0.1), tails(10.0)])
    assert off["exponent"] is None
    one_seed = transfer.exponent(sizes, GRID, [[parabola(GRID, 6.4 / s)] for s in sizes])
    assert one_seed["exponent"] == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize(
    "optimizer, low, high", [("sgd", 2.0**-7, 4.0), ("adam", 2.0**-13, 2.0**-4)]
)
def test_default_sweep_grid_is_spaced_a_half_octave(optimizer, low, high):
    from scaling.probes import Request
    from scaling.setup import ProbeModel

    request = Request(ProbeModel.of(optimizer=optimizer), (64, 256), (3,))
    grid = request.lr_grid(fine=True)
    assert len(grid) == 19 and grid[0] == pytest.approx(low) and grid[-1] == pytest.approx(high)
    assert np.log2(grid[1:] / grid[:-1]) == pytest.approx(np.full(18, 0.5))
    assert len(request.lr_grid()) == 10  # maxlr's bracket keeps its coarse grid


def test_a_proxy_lr_that_diverges_on_the_target_is_reported_as_such(monkeypatch):
    """The penalty is then no number: the table names the seeds that diverged."""
    import scaling_data as data
    from scaling import transfer_error
    from scaling.grid import GridSpec
    from scaling.probes import PROBES, Request
    from scaling.setup import ProbeModel

    spec = ProbeModel.of(base_width=16)
    lrs = [0.01, 0.03, 0.1]
    grid = GridSpec(spec, data.load("mnist1d"), seeds=2, steps=5, batch_size=32, optimizer="sgd")
    swept = transfer_error.sweep(grid, 16, 2, lrs, 0, lambda _: None, extra_lr=1e4)
    assert swept["diverged_at_proxy_lr"] == 2 and swept["loss_at_proxy_lr"] == np.inf
    assert swept["beats_chance"] == (swept["loss_at_opt"] < np.log(10))

    def fake_measure(spec, sizes, axis, fixed, lrs, *rest):
        entry = {"width": 16, "depth": 2, "lrs": list(lrs), "loss": [[1.0, 0.5, 1.0]] * 2,
                 "lr_opt": 0.03, "where": "inside", "loss_at_opt": 0.5,
                 "seed_scatter_log2": None, "seconds": 1.0, "beats_chance": True}  # fmt: skip
        target = entry | {"width": 64, "loss_at_proxy_lr": np.inf, "diverged_at_proxy_lr": 1,
                          "loss_at_opt": 9.0, "beats_chance": False,  # chance: ln 10
                          "transfer_error_log2": 0.0, "error_bound_log2": None,
                          "loss_penalty": None}  # fmt: skip
        return {"axis": axis, "proxy": entry, "targets": [target]}

    monkeypatch.setattr(transfer_error, "measure", fake_measure)
    request = Request(spec, (16, 64), (2,), seeds=2, lrs=tuple(lrs), dataset="mnist1d")
    report = PROBES["transfer_error"](request)
    assert "diverged (1 of 2 seeds)" in report.table
    assert "at width 64 no LR trains the model: best loss 9 >= chance ln(10)" in report.table
    assert "at width 16 no LR" not in report.table
