"""Each probe as (measurement -> JSON record, printed table, PNG plot)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from scaling import coord, maxlr, optimum, plots, poly, sharpness, transfer, transfer_error, update
from scaling.fit import fit_power_law, seed_mean
from scaling.setup import ProbeModel, geometric_grid


class ProbeError(ValueError):
    """A probe that cannot run as asked (one line for the command line)."""


@dataclasses.dataclass(frozen=True)
class Request:
    """What the command line asked for."""

    spec: ProbeModel
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int = 3
    lr: float = 0.01
    steps: int = 3
    optimizer: str = "sgd"
    layers: str = ""  # regex: which layers enter the update criterion ("" = all)
    lrs: tuple[float, ...] = ()
    threshold: float = 0.9
    dataset: str = ""
    batch_size: int = 128
    rounds: int = 3
    out: str = ""
    log_mean: bool = False  # update: geometric seed means of eta* (Jelassi protocol)

    def lr_grid(self, fine: bool = False) -> np.ndarray:
        """--lrs, or log-spaced LRs suited to the optimizer family: 10 (maxlr's bracket), or
        with `fine` (LR sweeps that locate an optimum) 19 spaced 2^(1/2) apart, 2^-7..2^2
        for SGD and 2^-13..2^-4 for Adam: a factor-2 grid moved MLP optima by up to 0.25
        log2 (its parabola is biased on asymmetric curves; WORKSPACE.md, noisy optima)."""
        if self.lrs:
            return np.array(sorted(self.lrs), float)
        if fine:
            top = 4.0 if self.spec.optimizer == "sgd" else 2.0**-4
            return top * 2.0 ** (-np.arange(18, -1, -1) / 2)
        low, high = (1e-3, 3.0) if self.spec.optimizer == "sgd" else (1e-4, 1e-1)
        return geometric_grid(low, high, 10)

    def data(self):
        import scaling_data as data

        return data.load(self.dataset)

    def swept(self) -> tuple[str, tuple[int, ...]]:
        """The one axis with several sizes, ('width' | 'depth', sizes)."""
        if len(self.widths) > 1 and len(self.depths) > 1:
            raise ProbeError("sweep widths or depths, not both (give one value for the other)")
        if len(self.widths) > 1:
            return "width", self.widths
        if len(self.depths) > 1:
            return "depth", self.depths
        raise ProbeError("needs at least two sizes: --widths=a,b,... or --depths=a,b,...")


@dataclasses.dataclass
class Report:
    record: dict[str, Any]
    table: str
    plot: Callable[[str], None]


def _table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)


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


def _fmt_scatter(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _law(sizes, samples) -> dict:
    return fit_power_law(sizes, samples).to_json()


def _law_line(what: str, law: dict) -> str:
    """e.g. 'eta_opt ~ width^-0.012  95% CI [-0.10, +0.08]'."""
    low, high = law["ci"]
    return f"{what}^{law['exponent']:+.3f}  95% CI [{low:+.3f}, {high:+.3f}]"


def run_coord(req: Request) -> Report:
    axis, widths = req.swept()
    if axis != "width":
        raise ProbeError("coord sweeps widths: --widths=a,b,... with one --depths value")
    depth = req.depths[0]
    result = coord.measure(req.spec, widths, depth, req.seeds, req.lr, req.steps, req.optimizer)
    rows = [[k, s["activation"], s["change"]] for k, s in result["slopes"].items()]
    record = {"widths": list(widths), "depth": depth, "lr": req.lr, "steps": req.steps} | result

    def plot(path):
        panel = {
            f"RMS of {kind} (step {req.steps})": {
                k: (widths, [result["runs"][str(w)][kind][k][-1] for w in widths])
                for k in result["layers"]
            }
            for kind in ("activation", "change")
        }
        title = f"coordinate check: {req.spec.model} / {req.spec.rule}"
        plots.panels(path, title, "width", "RMS", panel)

    return Report(record, _table(["layer", "slope(activation)", "slope(change)"], rows), plot)


def run_update(req: Request) -> Report:
    import re

    axis, sizes = req.swept()
    widths = req.widths if axis == "width" else req.widths[:1]
    depths = req.depths if axis == "depth" else req.depths[:1]
    result = update.measure(req.spec, widths, depths, req.seeds)
    rows, eta = [], {c: [] for c in update.CRITERIA}
    for entry in result["results"]:
        chosen = [i for i, k in enumerate(entry["layers"]) if re.search(req.layers, k)]
        if not chosen:
            raise ProbeError(f"--layers={req.layers!r} matches none of {entry['layers']}")
        entry["criterion_layers"] = [entry["layers"][i] for i in chosen]
        for c in update.CRITERIA:
            per_seed = [
                update.max_update_lr({str(i): s[i] for i in chosen}, c) for s in entry["C_per_seed"]
            ]
            entry["eta_star"][c] = per_seed
            eta[c].append(per_seed)
        entry["seed_scatter_log2"] = {
            c: optimum.log2_scatter(entry["eta_star"][c]) for c in update.CRITERIA
        }
        rows.append(
            [
                entry[axis],
                *[float(seed_mean(eta[c][-1], req.log_mean)) for c in update.CRITERIA],
                *[_fmt_scatter(entry["seed_scatter_log2"][c]) for c in update.CRITERIA],
            ]
        )
    laws = {c: fit_power_law(sizes, eta[c], log_mean=req.log_mean) for c in update.CRITERIA}
    record = {
        f"{axis}s": list(sizes),
        "axis": axis,
        "layers_regex": req.layers,
        "outputs": req.spec.num_classes,
        "seed_average": "geometric" if req.log_mean else "arithmetic",
        "results": result["results"],
        "eta_star": {
            c: [float(seed_mean(v, req.log_mean)) for v in eta[c]] for c in update.CRITERIA
        },
        "exponent": {c: laws[c].exponent for c in update.CRITERIA},
        "ci": {c: list(laws[c].ci) for c in update.CRITERIA},
    }
    table = (
        _table([axis, "eta*(max)", "eta*(mean)", "scatter(max)", "scatter(mean)"], rows)
        + "\n"
        + "\n".join(
            _law_line(
                f"eta*({c}) ~ {axis}", {"exponent": record["exponent"][c], "ci": record["ci"][c]}
            )
            for c in update.CRITERIA
        )
    )

    def plot(path):
        grouped = [update.layer_groups(e["C"]) for e in result["results"]]
        names = [k for k in grouped[0] if all(k in g for g in grouped)]
        panel = {
            "maximal-update LR": {c: (sizes, record["eta_star"][c]) for c in update.CRITERIA},
            "C_l = E[dz_l^2] / eta^2": {k: (sizes, [g[k] for g in grouped]) for k in names},
        }
        plots.panels(path, f"one-step update: {req.spec.model} / {req.spec.rule}", axis, "", panel)

    return Report(record, table, plot)


def run_sharpness(req: Request) -> Report:
    widths, depths = req.widths, req.depths
    if len(widths) * len(depths) < 2:
        raise ProbeError("needs at least two sizes: --widths=a,b,... or --depths=a,b,...")
    result = sharpness.measure(req.spec, widths, depths, req.seeds, dataset=req.data())
    _compare_with_maxlr(result, req.out)
    products = [e["width"] * e["depth"] for e in result["results"]]
    lambdas = [e["lambda1"] for e in result["results"]]
    law = _law(products, lambdas) if len(set(products)) > 1 else None
    record = {"widths": list(widths), "depths": list(depths)} | result
    record["lambda1_vs_depth_x_width"] = law
    rows = [
        [e["width"], e["depth"], *(float(np.mean(e[k])) for k in ("lambda1", "two_over_lambda1"))]
        for e in result["results"]
    ]
    table = _table(["width", "depth", "lambda_1", "2/lambda_1"], rows)
    if law:
        table += "\n" + _law_line("lambda_1 ~ (depth x width)", law)

    def plot(path):
        order = np.argsort(products)
        xs = [products[i] for i in order]
        series = {"lambda_1": (xs, [float(np.mean(lambdas[i])) for i in order])}
        plots.lines(
            path,
            f"sharpness at init: {req.spec.model} / {req.spec.rule}",
            "depth x width",
            "top Hessian eigenvalue",
            series,
        )

    return Report(record, table, plot)


def run_poly(req: Request) -> Report:
    axis, widths = req.swept()
    if axis != "width" or req.spec.model != "mlp":
        raise ProbeError("poly needs --model=mlp and a width sweep (--widths=a,b,...)")
    try:
        result = poly.measure(req.spec, widths, req.depths[0], req.seeds)
    except ValueError as e:
        raise ProbeError(str(e)) from None
    optima = [e["eta_opt"] for e in result["results"]]
    means = [float(np.nanmean(o)) if np.isfinite(o).any() else float("nan") for o in optima]
    found = all(np.isfinite(o).all() for o in optima)
    for entry in result["results"]:  # one-step optima of the seeds' own inits and batches
        entry["seed_scatter_log2"] = optimum.log2_scatter(entry["eta_opt"])
    scatter = [e["seed_scatter_log2"] for e in result["results"]]
    record = {"widths": list(widths), "found_in_range": found, "eta_opt": means} | result
    record["seed_scatter_log2"] = scatter
    record["exponent"], record["ci"] = None, None
    if found:
        law = _law(widths, optima)
        record["exponent"], record["ci"] = law["exponent"], law["ci"]
    rows = [[w, m, _fmt_scatter(c)] for w, m, c in zip(widths, means, scatter)]
    table = _table(["width", "eta_opt", "seed scatter (log2)"], rows)
    table += (
        "\n" + _law_line("eta_opt ~ width", record)
        if found
        else "\nnot found in range for some width (see found_in_range)"
    )

    def plot(path):
        series = {}
        for entry in result["results"]:
            p = np.polynomial.Polynomial(np.mean(entry["coefficients"], axis=0))
            top = 3 * max(np.nanmax(means), 1e-12)
            etas = np.linspace(0, top, 200)
            series[f"width {entry['width']}"] = (etas, p(etas))
        plots.lines(
            path,
            f"one-step loss of a deep linear MLP: {req.spec.rule}",
            "eta",
            "loss after one step",
            series,
            logx=False,
            logy=True,
            marker="",
        )

    return Report(record, table, plot)


def _compare_with_maxlr(result: dict, out: str) -> None:
    """Put the maximal initial LR of the same (width, depth), if `maxlr` ran into `out`."""
    import json
    import os

    path = os.path.join(out, "maxlr.json")
    if not out or not os.path.exists(path):
        return
    try:  # an unreadable maxlr.json must not cost the sharpness measurement
        with open(path) as f:
            found = {(e["width"], e["depth"]): e["eta_star"] for e in json.load(f)["results"]}
    except (OSError, ValueError, KeyError, TypeError):
        return
    for entry in result["results"]:
        eta = found.get((entry["width"], entry["depth"]))
        entry["maxlr_eta_star"] = eta
        if eta:
            entry["eta_star_x_lambda1_over_2"] = eta / float(np.mean(entry["two_over_lambda1"]))


def _lr_sweeps(req: Request, probe: str, measure) -> tuple[str, Any, np.ndarray, dict]:
    """(axis, sizes, lrs, result) of `measure` (transfer's or transfer_error's) over the swept
    sizes, the other size held at its first value; ProbeError for fewer than three LRs."""
    axis, sizes = req.swept()
    fixed = req.depths[0] if axis == "width" else req.widths[0]
    lrs = req.lr_grid(fine=True)
    if len(lrs) < 3:
        raise ProbeError(f"{probe} needs at least three learning rates (--lrs=a,b,c,...)")
    result = measure(
        req.spec,
        sizes,
        axis,
        fixed,
        lrs,
        req.seeds,
        req.data(),
        req.steps,
        req.batch_size,
        req.optimizer,
    )
    return axis, sizes, lrs, result


def run_transfer(req: Request) -> Report:
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
            _fmt_scatter(e["seed_scatter_log2"]),
        ]
        for e in entries
    ]
    table = _table([axis, "eta_opt (seed mean)", "per seed", "seed scatter (log2)"], rows)
    if law["exponent"] is not None:
        table += "\n" + _law_line(f"eta_opt ~ {axis}", law)
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
        raise ProbeError("needs at least two sizes: --widths=a,b,... or --depths=a,b,...")
    lrs, dataset = req.lr_grid(), req.data()
    results = []
    for width, depth in pairs:
        entry = maxlr.search(
            req.spec,
            width,
            depth,
            float(lrs[0]),
            float(lrs[-1]),
            len(lrs),
            req.rounds,
            req.threshold,
            req.seeds,
            dataset,
            req.steps,
            req.batch_size,
            req.optimizer,
        )
        results.append({"width": width, "depth": depth} | entry)
        print(f"width {width} depth {depth}: {entry['status']}, eta* = {entry['eta_star']}")
    found = [e for e in results if e["eta_star"]]
    products = [e["width"] * e["depth"] for e in found]
    law = None
    if len(set(products)) > 1:
        law = fit_power_law(products, [e["eta_star"] for e in found]).to_json()
    record = {
        "widths": list(req.widths),
        "depths": list(req.depths),
        "steps": req.steps,
        "threshold": req.threshold,
        "results": results,
        "fit_depth_x_width": law,
    }
    rows = [
        [e["width"], e["depth"], e["eta_star"] or e["status"], _fmt_scatter(e["seed_scatter_log2"])]
        for e in results
    ]
    table = _table(["width", "depth", "eta*", "seed scatter (log2)"], rows)
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
        rows.append(row(t, error, penalty))
    header = [axis, "lr_opt", "seed scatter (log2)", "transfer error (log2)", "loss penalty"]
    table = _table(header, rows) + f"\nproxy sweep: {proxy['seconds']:.1f} s (compile included)"

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


PROBES: dict[str, Callable[[Request], Report]] = {
    "coord": run_coord,
    "update": run_update,
    "sharpness": run_sharpness,
    "poly": run_poly,
    "transfer": run_transfer,
    "maxlr": run_maxlr,
    "transfer_error": run_transfer_error,
}
