"""Reports of the probes that train LR sweeps: transfer, maxlr, transfer_error."""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling import maxlr, optimum, plots, transfer, transfer_error
from scaling.request import (
    Report,
    Request,
    fmt_scatter,
    format_table,
    law_line,
    power_law,
)
from scaling_training.errors import ConfigError


def _lr_or_where(lr: float, where: str) -> str:
    """A found optimum as a number, else 'below' / 'above' (the grid) or 'diverged'."""
    return (
        f"{lr:.3g}"
        if where == optimum.INSIDE
        else {optimum.DIVERGED: "diverged"}.get(where, where.split()[0])
    )


def _finite_or_nan(values) -> np.ndarray:
    """Diverged (inf) points left out of a plot's line."""
    values = np.asarray(values, float)
    return np.where(np.isfinite(values), values, np.nan)


def _lr_sweeps(req: Request, probe: str, measure) -> tuple[str, Any, np.ndarray, dict]:
    """(axis, sizes, lrs, result) of `measure` (transfer's or transfer_error's) over the swept
    sizes, the other size held at its first value; ConfigError for fewer than three LRs."""
    axis, sizes = req.swept()
    fixed = req.depths[0] if axis == "width" else req.widths[0]
    lrs = req.lr_grid(fine=True)
    if len(lrs) < 3:
        raise ConfigError("", f"{probe} needs at least three learning rates (--lrs=a,b,c,...)")
    result = measure(req.grid(), sizes, axis, fixed, lrs)
    return axis, sizes, lrs, result


def run_transfer(req: Request) -> Report:
    if req.axes is not None:
        from scaling import report_axes

        return report_axes.run(req, "transfer")
    axis, sizes, lrs, result = _lr_sweeps(req, "transfer", transfer.measure)
    entries = result["results"]
    law = transfer.exponent(sizes, lrs, [e["tail_loss"] for e in entries])
    off_grid = [e[axis] for e in entries if e["where"] != "inside"]
    record = (
        {f"{axis}s": list(sizes), "axis": axis, "steps": req.steps}
        | result
        | {
            "eta_opt": [e["lr_opt"] for e in entries],  # of each size's seed-mean curve
            "seed_scatter_log2": [e["seed_scatter_log2"] for e in entries],
            "optimum_at_grid_edge": any(any(e["optimum_at_grid_edge"]) for e in entries),
        }
        | law
    )
    rows = [
        [
            e[axis],
            e["lr_opt"] if e["lr_opt"] is not None else e["where"],
            ", ".join(_lr_or_where(v, w) for v, w in zip(e["eta_opt"], e["where_per_seed"])),
            fmt_scatter(e["seed_scatter_log2"]),
        ]
        for e in entries
    ]
    table = format_table([axis, "eta_opt (seed mean)", "per seed", "seed scatter (log2)"], rows)
    if law["exponent"] is not None:
        table += "\n" + law_line(f"eta_opt ~ {axis}", law)
        if law["resamples_off_grid"]:
            table += f" ({law['resamples_off_grid']:.0%} of bootstrap resamples off the grid)"
    else:
        table += f"\nno optimum inside the LR grid at {axis} {off_grid}: widen --lrs"
    if record["optimum_at_grid_edge"] and law["exponent"] is not None:
        table += "\nnote: some seed's own optimum sits at the edge of the LR grid"

    def plot(path):
        series = {
            f"{axis} {e[axis]}": (lrs, _finite_or_nan(optimum.seed_mean(e["tail_loss"])))
            for e in entries
        }
        plots.lines(
            path,
            f"LR transfer: {req.spec.model} / {req.spec.rule} ({req.steps} steps)",
            "learning rate",
            "train loss, last 10% of steps (seed mean)",
            series,
            logx=True,
            logy=True,
            vlines=[e["lr_opt"] for e in entries if e["lr_opt"] is not None],
        )

    return Report(record, table, plot)


def run_maxlr(req: Request) -> Report:
    pairs = [(w, d) for w in req.widths for d in req.depths]
    if len(pairs) < 2:
        raise ConfigError("", "needs at least two sizes: --widths=a,b,... or --depths=a,b,...")
    lrs, grid = req.lr_grid(), req.grid()
    results = []
    for width, depth in pairs:
        low, high = float(lrs[0]), float(lrs[-1])
        entry = maxlr.search(grid, width, depth, low, high, len(lrs), req.rounds, req.threshold)
        results.append({"width": width, "depth": depth} | entry)
        print(f"width {width} depth {depth}: {entry['status']}, eta* = {entry['eta_star']}")
    found = [e for e in results if e["eta_star"]]
    products = [e["width"] * e["depth"] for e in found]
    law = None
    if len(set(products)) > 1:
        law = power_law(products, [e["eta_star"] for e in found])
    record = {
        "widths": list(req.widths),
        "depths": list(req.depths),
        "steps": req.steps,
        "threshold": req.threshold,
        "results": results,
        "fit_depth_x_width": law,
    }
    rows = [
        [e["width"], e["depth"], e["eta_star"] or e["status"], fmt_scatter(e["seed_scatter_log2"])]
        for e in results
    ]
    table = format_table(["width", "depth", "eta*", "seed scatter (log2)"], rows)
    table += (
        f"\neta* ~ (depth x width)^{law['exponent']:+.3f}"
        if law
        else "\ntoo few sizes with eta* found in range for a fit"
    )

    def plot(path):
        series = {"eta*": (products, [e["eta_star"] for e in found])} if found else {}
        plots.lines(
            path,
            f"maximal initial LR: {req.spec.model} / {req.spec.rule}",
            "depth x width",
            "eta*",
            series,
        )

    return Report(record, table, plot)


def run_transfer_error(req: Request) -> Report:
    if req.axes is not None:
        from scaling import report_axes

        return report_axes.run(req, "transfer_error")
    axis, sizes, _, result = _lr_sweeps(req, "transfer_error", transfer_error.measure)
    proxy = result["proxy"]
    record = {"axis": axis, f"{axis}s": list(sizes), "steps": req.steps} | result
    record["proxy_sweep_seconds"] = proxy["seconds"]

    def row(entry, error=None, penalty=None):
        lr = f"{entry['lr_opt']:.4g}" if entry["where"] == "inside" else entry["where"]
        scatter = entry["seed_scatter_log2"]
        return [entry[axis], lr, "-" if scatter is None else f"{scatter:.2f}", error, penalty]

    rows = [row(proxy, "(proxy)", "")]
    for t in result["targets"]:
        error = transfer_error._fmt(t["transfer_error_log2"], t["error_bound_log2"])
        penalty = "" if t["loss_penalty"] is None else f"{t['loss_penalty']:+.4f}"
        if t.get("diverged_at_proxy_lr"):
            penalty = f"diverged ({t['diverged_at_proxy_lr']} of {req.seeds} seeds)"
        rows.append(row(t, error, penalty))
    header = [axis, "lr_opt", "seed scatter (log2)", "transfer error (log2)", "loss penalty"]
    table = (
        format_table(header, rows) + f"\nproxy sweep: {proxy['seconds']:.1f} s (compile included)"
    )
    chance = float(np.log(req.spec.num_classes))
    for entry in [proxy, *result["targets"]]:
        if entry["beats_chance"] is False:
            table += (
                f"\nat {axis} {entry[axis]} no LR trains the model: best loss "
                f"{entry['loss_at_opt']:.3g} >= chance ln({req.spec.num_classes}) = {chance:.2f}"
            )

    def plot(path):
        series = {}
        for name, e in [("proxy", proxy)] + [("target", t) for t in result["targets"]]:
            curve = np.array(e["loss"], float)
            mean = np.where(np.isfinite(curve).all(0), curve.mean(0), np.nan)
            series[f"{name} {axis} {e[axis]}"] = (e["lrs"], mean)
        title = f"transfer error: {req.spec.model} / {req.spec.rule} ({req.steps} steps)"
        plots.lines(
            path,
            title,
            "learning rate",
            "train loss, last 10% of steps",
            series,
            logx=True,
            logy=True,
            vlines=[proxy["lr_opt"]],
        )

    return Report(record, table, plot)
