"""Report of transfer / transfer_error along any axes (`scaling.transfer_axes`).

The table: one row per point (proxy first) with its optimum and seed scatter, and for each
target the transfer error and loss penalty of the proxy's value and of each corrected LR.
With one swept axis and three or more points, the optimum's power law in that axis (fit
and bootstrap interval over seeds). The plot: the seed-mean loss against the tuned value
per point, and the optimum against the axis with the fitted line and its interval.
"""

from __future__ import annotations

import numpy as np

from scaling import optimum, transfer_axes
from scaling.request import Report, Request, fmt_scatter, format_table
from scaling_training.errors import ConfigError


def _value_key(tune: str) -> str:
    return "weight_decay_opt" if tune == "weight_decay" else "lr_opt"


def run(req: Request, probe: str) -> Report:
    ax = req.axes
    lrs = req.lr_grid(fine=True)
    if len(lrs) < 3 and ax.tune != "weight_decay":
        raise ConfigError("", f"{probe} needs at least three learning rates (--lrs=a,b,c,...)")
    tuning = transfer_axes.Tuning(
        tune=ax.tune,
        lrs=tuple(float(v) for v in lrs),
        weight_decays=ax.weight_decays,
        lr=req.lr,
        weight_decay=ax.weight_decay,
        objective=ax.objective,
        weight_decay_mode=ax.weight_decay_mode,
        weight_decay_width=ax.weight_decay_width,
    )
    result = transfer_axes.measure(
        req.spec, list(ax.points), tuning, req.seeds, req.data(), ax.corrections
    )
    entries = [result["proxy"], *result["targets"]]
    key = _value_key(ax.tune)
    record = {"axis": list(ax.axes), "batch_keeps": ax.batch_keeps, "steps": req.steps}
    if ax.tune != "lr" or ax.weight_decay is not None:
        record |= {
            "weight_decay_mode": ax.weight_decay_mode,
            "weight_decay_width": ax.weight_decay_width,
        }
    record |= result
    law = None
    if len(ax.axes) == 1 and len(entries) >= 3 and ax.tune != "both":
        grids = [e["weight_decays" if ax.tune == "weight_decay" else "lrs"] for e in entries]
        sizes = [e[ax.axes[0]] for e in entries]
        law = transfer_axes.exponent(sizes, grids, [e["loss"] for e in entries])
        record["fit"] = law

    rows, names = [], list(result["targets"][0]["choices"]) if result["targets"] else []
    for i, e in enumerate(entries):
        where = e["where"] if ax.tune != "both" else e["where"]["lr"]
        value = f"{e[key]:.4g}" if where == optimum.INSIDE else where
        if ax.tune == "both":
            value += f" / wd {e['weight_decay_opt']:.3g} ({e['where']['weight_decay']})"
        scatter = e["seed_scatter_log2"]
        scatter = (
            "/".join(fmt_scatter(v) for v in scatter.values())
            if isinstance(scatter, dict)
            else fmt_scatter(scatter)
        )
        row = [e["width"], e["depth"], e["steps"], e["batch_size"], value, scatter]
        row.append(f"{e['loss_at_opt']:.4g}")
        for name in names:
            if i == 0:
                row.append("(proxy)")
                continue
            c = e["choices"][name]
            error = transfer_axes._fmt(c["transfer_error_log2"])
            penalty = "-" if c["loss_penalty"] is None else f"{c['loss_penalty']:+.4f}"
            if c["diverged_seeds"]:
                penalty = f"diverged ({c['diverged_seeds']} of {req.seeds} seeds)"
            row.append(f"{error} ({penalty})")
        rows.append(row)
    tuned = "wd" if ax.tune == "weight_decay" else "lr"
    header = ["width", "depth", "steps", "batch", f"{tuned}_opt", "seed scatter (log2)", "loss"]
    header += [f"{n}: error log2 (penalty)" for n in names]
    table = format_table(header, rows)
    if law is not None and law["exponent"] is not None:
        low, high = law["ci"]
        table += (
            f"\n{tuned}_opt ~ {ax.axes[0]}^{law['exponent']:+.3f}  95% CI [{low:+.3f}, {high:+.3f}]"
        )
    elif law is not None:
        table += "\nno power-law fit: some optimum is off the grid"

    def plot(path):
        _plot(path, req, ax, entries, key, law)

    return Report(record, table, plot)


def _plot(path, req, ax, entries, key, law) -> None:
    from scaling.plots import _pyplot, _save

    plt = _pyplot()

    tune = ax.tune
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for e in entries:
        label = " ".join(f"{a} {e[a]}" for a in ax.axes)
        loss = np.asarray(e["loss"], float)
        mean = optimum.seed_mean(loss.reshape(loss.shape[0], -1)).reshape(loss.shape[1:])
        if tune == "both":  # the curve along the LR at the best weight decay
            j = int(np.argmin(np.where(np.isfinite(mean), mean, np.inf).min(axis=0)))
            xs, ys, label = e["lrs"], mean[:, j], f"{label} (wd {e['weight_decays'][j]:.3g})"
        else:
            xs = e["weight_decays"] if tune == "weight_decay" else e["lrs"]
            ys = mean
        left.plot(xs, np.where(np.isfinite(ys), ys, np.nan), marker="o", label=label)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="weight decay" if tune == "weight_decay" else "learning rate",
        ylabel=f"{ax.objective} loss (seed mean)",
        title=f"{req.spec.model} / {req.spec.rule}, {req.optimizer}",
    )
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    axis = ax.axes[0]
    sizes = [e[axis] for e in entries]
    opts = [e[key] if (e["where"] if tune != "both" else e["where"]["lr"]) == "inside" else np.nan
            for e in entries]  # fmt: skip
    scatter = [e["seed_scatter_log2"] for e in entries]
    scatter = [s["lr"] if isinstance(s, dict) else s for s in scatter]
    errs = [(o * (1 - 2.0 ** -(s or 0)), o * (2.0 ** (s or 0) - 1)) for o, s in zip(opts, scatter)]
    if not np.isfinite(opts).any():  # every optimum off the grid: nothing to draw
        right.set_title("no optimum inside the grid")
        _save(fig, path)
        return
    right.errorbar(sizes, opts, yerr=np.array(errs).T, marker="o", capsize=3, label="optimum")
    if law is not None and law["exponent"] is not None:
        xs = np.geomspace(min(sizes), max(sizes), 50)
        c, p = law["coefficient"], law["exponent"]
        right.plot(xs, c * xs**p, "k--", label=f"fit {axis}^{p:+.2f}")
        center = np.exp(np.mean(np.log(sizes)))
        mid = c * center**p
        for q in law["ci"]:
            right.plot(xs, mid * (xs / center) ** q, ":", color="gray")
        right.plot(
            [], [], ":", color="gray", label=f"95% CI [{law['ci'][0]:+.2f}, {law['ci'][1]:+.2f}]"
        )
    right.set(xscale="log", yscale="log", xlabel=" x ".join(ax.axes), ylabel=key)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    _save(fig, path)
