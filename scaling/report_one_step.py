"""Reports of the probes that measure the model at or near init: coord, update, sharpness, poly."""

from __future__ import annotations

import numpy as np

from scaling import coord, diagnostics, optimum, plots, poly, sharpness, update
from scaling.fit import fit_exponent, fit_power_law, seed_mean
from scaling.inputs import for_request
from scaling.request import (
    Report,
    Request,
    fmt_scatter,
    format_table,
    law_line,
    power_law,
)
from scaling_training.errors import ConfigError


def run_coord(req: Request) -> Report:
    axis, widths = req.swept()
    if axis != "width":
        raise ConfigError("", "coord sweeps widths: --widths=a,b,... with one --depths value")
    depth = req.depths[0]
    inputs = for_request(req)
    result = coord.measure(
        req.spec, widths, depth, req.seeds, req.lr, req.steps, req.optimizer, inputs=inputs,
        diagnose=True,
    )  # fmt: skip
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
        for field, title in DIAGNOSTIC_PANELS.items():
            panel[title] = {
                k: (widths, [result["diagnostics"][str(w)][k][field] for w in widths])
                for k, s in result["diagnostic_slopes"].items()
                if s[field] is not None
            }
        title = f"coordinate check: {req.spec.model} / {req.spec.rule} ({req.optimizer})"
        plots.panels(path, title, "width", "", panel)

    table = (
        f"inputs: {result['inputs']}\n"
        + format_table(["layer", "slope(activation)", "slope(change)"], rows)
        + "\n"
        + coord.verdict_line(result["verdict"])
        + f"\nfirst step, per parameter, at width {widths[-1]} (slope against width):\n"
        + diagnostics_table(result, widths[-1])
    )
    return Report(record, table, plot)


DIAGNOSTIC_PANELS = {
    "rel_update_fro": "||dW||_F / ||W||_F (first step)",
    "alignment_ratio": "alignment ratio (first step)",
    "effective_lr": "effective LR ||dW|| / ||g|| (first step)",
}


def diagnostics_table(result: dict, width: int) -> str:
    """Per parameter: relative update (Frobenius, spectral), alignment, effective LR."""
    header = ["parameter", "lr mult", "|dW|/|W|", "|dW|2/|W|2", "align", "align exp", "eff. LR"]
    rows = []
    for key, entry in result["diagnostics"][str(width)].items():
        slopes = result["diagnostic_slopes"].get(key, {})
        rows.append(
            [key, f"{entry['lr_multiplier']:.3g}"]
            + [
                _cell(entry[field], slopes.get(field))
                for field in (
                    "rel_update_fro",
                    "rel_update_spectral",
                    "alignment_ratio",
                    "alignment_exponent",
                    "effective_lr",
                )
            ]  # fmt: skip
        )
    return format_table(header, rows)


def _cell(value, slope) -> str:
    """'0.123 (+0.05)': a value and its slope against width; '-' when undefined."""
    if value is None:
        return "-"
    return f"{value:.3g}" + (f" ({slope:+.2f})" if slope is not None else "")


def run_update(req: Request) -> Report:
    import re

    axis, sizes = req.swept()
    widths = req.widths if axis == "width" else req.widths[:1]
    depths = req.depths if axis == "depth" else req.depths[:1]
    inputs = for_request(req)
    result = update.measure(req.spec, widths, depths, req.seeds, inputs=inputs)
    rows, eta = [], {c: [] for c in update.CRITERIA}
    for entry in result["results"]:
        chosen = [i for i, k in enumerate(entry["layers"]) if re.search(req.layers, k)]
        if not chosen:
            raise ConfigError("", f"--layers={req.layers!r} matches none of {entry['layers']}")
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
                *[fmt_scatter(entry["seed_scatter_log2"][c]) for c in update.CRITERIA],
            ]
        )
    laws = {c: fit_power_law(sizes, eta[c], log_mean=req.log_mean) for c in update.CRITERIA}
    record = {
        f"{axis}s": list(sizes),
        "axis": axis,
        "inputs": result["inputs"],
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
    record |= _one_step_diagnostics(req, result["results"], axis, sizes, inputs)
    table = (
        f"inputs: {result['inputs']}\n"
        + format_table([axis, "eta*(max)", "eta*(mean)", "scatter(max)", "scatter(mean)"], rows)
        + "\n"
        + "\n".join(
            law_line(
                f"eta*({c}) ~ {axis}", {"exponent": record["exponent"][c], "ci": record["ci"][c]}
            )
            for c in update.CRITERIA
        )
        + f"\nfirst {req.optimizer} step (lr {req.lr:g}), per parameter, at {axis} {sizes[-1]} "
        + f"(slope against {axis}):\n"
        + diagnostics_table(record, sizes[-1])
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


def _one_step_diagnostics(req: Request, results: list, axis: str, sizes, inputs) -> dict:
    """coord's per-parameter diagnostics (scaling/diagnostics.py) for `update`: one real step
    of the rule's optimizer at --lr on the probe's example (softmax cross-entropy, as coord),
    seed-averaged at every size, and their slopes against the swept axis."""
    diagnosed = {}
    for entry in results:
        per_seed = []
        for seed in range(req.seeds):
            model = req.spec.build(entry["width"], entry["depth"], seed)
            x, labels = inputs.batch(req.spec.input_shape, req.spec.num_classes, 1, seed)
            per_seed.append(diagnostics.one_step(model, x, labels, req.optimizer, req.lr))
        diagnosed[str(entry[axis])] = diagnostics.seed_mean(per_seed)
    return {
        "diagnostics_step": f"one {req.optimizer} step at lr {req.lr:g} on the probe's example",
        "diagnostics": diagnosed,
        "diagnostic_slopes": _slopes(sizes, diagnosed),
    }


def _slopes(sizes, diagnosed: dict) -> dict:
    """Slope against the swept size of every diagnostic of every parameter present at every
    size (a depth sweep adds layers); None where undefined or with one size."""
    keys = set.intersection(*(set(diagnosed[str(s)]) for s in sizes))
    out = {}
    for key in sorted(keys):
        out[key] = {}
        for field in diagnostics.FIELDS:
            values = [diagnosed[str(s)][key][field] for s in sizes]
            ok = len(sizes) > 1 and all(v is not None and v > 0 for v in values)
            out[key][field] = fit_exponent(sizes, values)[0] if ok else None
    return out


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


def run_sharpness(req: Request) -> Report:
    widths, depths = req.widths, req.depths
    if len(widths) * len(depths) < 2:
        raise ConfigError("", "needs at least two sizes: --widths=a,b,... or --depths=a,b,...")
    result = sharpness.measure(req.spec, widths, depths, req.seeds, dataset=req.data())
    _compare_with_maxlr(result, req.out)
    products = [e["width"] * e["depth"] for e in result["results"]]
    lambdas = [e["lambda1"] for e in result["results"]]
    law = power_law(products, lambdas) if len(set(products)) > 1 else None
    record = {"widths": list(widths), "depths": list(depths)} | result
    record["inputs"] = f"dataset: the first 128 training examples of {req.dataset}"
    record["lambda1_vs_depth_x_width"] = law
    rows = [
        [e["width"], e["depth"], *(float(np.mean(e[k])) for k in ("lambda1", "two_over_lambda1"))]
        for e in result["results"]
    ]
    table = format_table(["width", "depth", "lambda_1", "2/lambda_1"], rows)
    if law:
        table += "\n" + law_line("lambda_1 ~ (depth x width)", law)

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
        raise ConfigError("", "poly needs --model=mlp and a width sweep (--widths=a,b,...)")
    try:
        result = poly.measure(req.spec, widths, req.depths[0], req.seeds)
    except ValueError as e:
        raise ConfigError("", str(e)) from None
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
        law = power_law(widths, optima)
        record["exponent"], record["ci"] = law["exponent"], law["ci"]
    rows = [[w, m, fmt_scatter(c)] for w, m, c in zip(widths, means, scatter)]
    table = format_table(["width", "eta_opt", "seed scatter (log2)"], rows)
    table += (
        "\n" + law_line("eta_opt ~ width", record)
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
