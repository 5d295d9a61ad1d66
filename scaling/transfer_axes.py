"""Transfer error along any axis: width, depth, training length, batch size, or several.

The proxy is the first `GridPoint`, each target a later one (`scaling.point.along`). What
is tuned: the LR (1-D grid, as `scaling.transfer_error`), the weight decay (coupled or
independent, with a per-layer width scaling: `Tuning`) at a fixed LR (1-D), or both (a
2-D grid; optimum of the seed-mean surface, `scaling.optimum2d`).
The loss of a member is its training loss over the last 10% of steps (`objective="train"`)
or its test loss after the last step (`"test"`; weight decay is a regularizer, and its
optimum on the training loss is usually 0). Each target also trains at the proxy's optimum
and at the proxy's LR times each correction's factor (`scaling.corrections`), so the loss
penalty of each choice is measured, not interpolated.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from scaling import corrections as corr
from scaling import optimum, optimum2d
from scaling.grid import GridSpec, train_grid
from scaling.point import GridPoint

TUNES = ("lr", "weight_decay", "both")
OBJECTIVES = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What is swept and what stays fixed.

    tune: "lr", "weight_decay" or "both". lrs / weight_decays: the grids (increasing).
    lr: the LR while tuning the weight decay alone. weight_decay: the coupled decay while
    tuning the LR alone (None: no decay term, the optimizer as the other probes build it).
    weight_decay_mode / weight_decay_width: how the decay acts (coupled: per step lr x wd;
    independent: per step wd) and scales per layer with width (rules/axes.py; "" = the
    mode's own).
    """

    tune: str = "lr"
    lrs: tuple[float, ...] = ()
    weight_decays: tuple[float, ...] = ()
    lr: float = 0.01
    weight_decay: float | None = None
    objective: str = "train"
    widen: int = 2
    weight_decay_mode: str = "coupled"
    weight_decay_width: str = ""

    def members(self, extras=()) -> tuple[list[float], list[float] | None]:
        """(lrs, weight decays) of the members: the grid (lr-major for both), then `extras`
        (values of the tuned hyperparameter; (lr, wd) pairs for both)."""
        if self.tune == "lr":
            lrs = list(self.lrs) + list(extras)
            wds = None if self.weight_decay is None else [self.weight_decay] * len(lrs)
            return lrs, wds
        if self.tune == "weight_decay":
            wds = list(self.weight_decays) + list(extras)
            return [self.lr] * len(wds), wds
        lrs = [lr for lr in self.lrs for _ in self.weight_decays] + [e[0] for e in extras]
        wds = [wd for _ in self.lrs for wd in self.weight_decays] + [e[1] for e in extras]
        return lrs, wds

    def grid(self) -> np.ndarray:
        return np.asarray(self.weight_decays if self.tune == "weight_decay" else self.lrs, float)


def _losses(spec, point: GridPoint, tuning: Tuning, seeds: int, dataset, extras) -> np.ndarray:
    lrs, wds = tuning.members(extras)
    grid = GridSpec(
        spec, dataset, seeds, point.steps, point.batch_size, point.optimizer,
        tuning.weight_decay_mode, tuning.weight_decay_width,
    )  # fmt: skip
    result = train_grid(
        grid, point.width, point.depth, lrs, score=tuning.objective == "test",
        schedule=point.schedule, weight_decays=wds,
    )  # fmt: skip
    return result.tail_loss if tuning.objective == "train" else result.test_loss


def sweep(spec, point: GridPoint, tuning: Tuning, seeds: int, dataset, echo, extras=()):
    """The optimum at `point` (a 1-D grid widened past an edge optimum up to `tuning.widen`
    times), and the seed-mean loss at each of `extras` (trained as further members)."""
    start = time.perf_counter()
    for attempt in range(tuning.widen + 1):
        losses = _losses(spec, point, tuning, seeds, dataset, extras)
        grid_size = len(tuning.members()[0])
        if tuning.tune == "both":
            break
        values = tuning.grid()
        tail = losses[:, :grid_size]
        best = optimum.find(values, optimum.seed_mean(tail))
        if best.where not in (optimum.BELOW, optimum.ABOVE) or attempt == tuning.widen:
            break
        echo(f"  optimum {best.where} at {best.lr:.3g}: widening the grid")
        wider = tuple(optimum.widened(values, best.where, 3).tolist())
        field = "weight_decays" if tuning.tune == "weight_decay" else "lrs"
        tuning = dataclasses.replace(tuning, **{field: wider})
    result = point.to_json()
    if tuning.tune == "both":
        shape = (seeds, len(tuning.lrs), len(tuning.weight_decays))
        surface = losses[:, :grid_size].reshape(shape)
        best2 = optimum2d.find(tuning.lrs, tuning.weight_decays, optimum.seed_mean(surface))
        per_seed = [optimum2d.find(tuning.lrs, tuning.weight_decays, s) for s in surface]
        result |= {
            "lrs": list(tuning.lrs),
            "weight_decays": list(tuning.weight_decays),
            "loss": surface.tolist(),  # [seed][lr][wd]; inf = diverged
            "lr_opt": best2.lr,
            "weight_decay_opt": best2.weight_decay,
            "where": {"lr": best2.where_lr, "weight_decay": best2.where_weight_decay},
            "loss_at_opt": best2.loss,
            "optimum_per_seed": [
                {
                    "lr": o.lr,
                    "weight_decay": o.weight_decay,
                    "where_lr": o.where_lr,
                    "where_weight_decay": o.where_weight_decay,
                }
                for o in per_seed
            ],  # fmt: skip
            "seed_scatter_log2": optimum2d.scatter(per_seed),
        }
    else:
        per = [optimum.find(values, row) for row in tail]
        name = "weight_decay" if tuning.tune == "weight_decay" else "lr"
        result |= {
            "lrs": list(tuning.lrs) if name == "lr" else [tuning.lr],
            "weight_decays": list(tuning.weight_decays)
            if name == "weight_decay"
            else [tuning.weight_decay],
            "loss": tail.tolist(),  # [seed][value]; inf = diverged
            f"{name}_opt": best.lr,
            "where": best.where,
            "loss_at_opt": best.loss,
            f"{name}_opt_per_seed": [o.lr if o.found else None for o in per],
            "where_per_seed": [o.where for o in per],
            "seed_scatter_log2": optimum.scatter_log2(per),
        }
    at_extras = losses[:, grid_size:]
    result["loss_at_extras"] = [float(optimum.seed_mean(c[:, None])[0]) for c in at_extras.T]
    result["diverged_at_extras"] = [int((~np.isfinite(c)).sum()) for c in at_extras.T]
    result["seconds"] = time.perf_counter() - start
    return result, tuning


def _found(entry: dict, tune: str) -> bool:
    where = entry["where"]
    if tune == "both":
        return where["lr"] == optimum.INSIDE and where["weight_decay"] == optimum.INSIDE
    return where == optimum.INSIDE


def _error(a: float, b: float) -> float:
    return abs(float(np.log2(a / b)))


def measure(
    spec, points: list[GridPoint], tuning: Tuning, seeds: int, dataset, corrections=(), echo=print
) -> dict[str, Any]:
    """Proxy = points[0], targets = points[1:]. Each target reports its own optimum, the
    transfer error of the proxy's (|log2| per tuned hyperparameter, None when an optimum is
    off the grid) and the loss penalty at the proxy's value, and for the LR, with the
    corrections: the corrected LR's error and penalty (each correction alone, and all of
    them together when they act on different axes)."""
    proxy, tuning = sweep(spec, points[0], tuning, seeds, dataset, echo)
    key = "weight_decay_opt" if tuning.tune == "weight_decay" else "lr_opt"
    echo(f"proxy {_describe(points[0])}: {key} {proxy[key]:.4g} ({proxy['where']})")
    proxy_found = _found(proxy, tuning.tune)
    choices = _choices(proxy, tuning, corrections) if proxy_found else {}
    targets = []
    for point in points[1:]:
        extras = [c(points[0], point) for c in choices.values()]
        target, _ = sweep(spec, point, tuning, seeds, dataset, echo, extras)
        found = proxy_found and _found(target, tuning.tune)
        target["choices"] = {}
        for (name, _), value, loss, diverged in zip(
            choices.items(), extras, target["loss_at_extras"], target["diverged_at_extras"]
        ):
            entry = {"value": value, "loss": loss, "diverged_seeds": diverged}
            entry["loss_penalty"] = loss - target["loss_at_opt"] if found and not diverged else None
            if tuning.tune == "both":
                entry["transfer_error_log2"] = (
                    {"lr": _error(value[0], target["lr_opt"]),
                     "weight_decay": _error(value[1], target["weight_decay_opt"])}
                    if found else None
                )  # fmt: skip
            else:
                entry["transfer_error_log2"] = _error(value, target[key]) if found else None
            target["choices"][name] = entry
        targets.append(target)
        line = ", ".join(
            f"{n} {_fmt(e['transfer_error_log2'])}" for n, e in target["choices"].items()
        )
        echo(f"target {_describe(point)}: {key} {target[key]:.4g} ({target['where']}); {line}")
    return {
        "tune": tuning.tune,
        "objective": tuning.objective,
        "corrections": [c.name for c in corrections],
        "proxy": proxy,
        "targets": targets,
    }


def _choices(proxy: dict, tuning: Tuning, corrections) -> dict[str, Any]:
    """name -> (proxy point, target point) -> the value the target trains at."""
    if tuning.tune == "weight_decay":
        return {"proxy": lambda p, t: proxy["weight_decay_opt"]}
    out = {}

    def at(factor_of):
        if tuning.tune == "both":
            return lambda p, t: (proxy["lr_opt"] * factor_of(p, t), proxy["weight_decay_opt"])
        return lambda p, t: proxy["lr_opt"] * factor_of(p, t)

    out["proxy"] = at(lambda p, t: 1.0)
    for c in corrections:
        out[c.name] = at(c.factor)
    if len({c.kind for c in corrections}) > 1:  # a horizon and a batch correction together
        out["+".join(c.name for c in corrections)] = at(
            lambda p, t: corr.combined_factor(corrections, p, t)
        )
    return out


def _describe(point: GridPoint) -> str:
    return f"width {point.width} depth {point.depth} steps {point.steps} batch {point.batch_size}"


def _fmt(error) -> str:
    if error is None:
        return "undefined"
    if isinstance(error, dict):
        return "/".join(f"{v:.2f}" for v in error.values())
    return f"{error:.2f}"


def exponent(sizes, grids, tails, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Power law of the seed-mean optima against `sizes` (size i swept over `grids[i]`,
    losses `tails[i]` [seed, value]), with a bootstrap interval resampling seeds at every
    size (resamples with an optimum off the grid dropped, their share reported). With one
    seed, the regression interval of `fit_power_law`. None when an optimum is off the grid."""
    from scaling.fit import fit_exponent, fit_power_law

    tails = [np.asarray(t, float) for t in tails]
    optima = [optimum.find(g, optimum.seed_mean(t)) for g, t in zip(grids, tails)]
    if not all(o.found for o in optima) or len(set(sizes)) < 2:
        return {"exponent": None, "ci": None, "coefficient": None, "resamples_off_grid": None}
    values = [o.lr for o in optima]
    slope, intercept = fit_exponent(sizes, values)
    if tails[0].shape[0] == 1:
        law = fit_power_law(sizes, values)
        ci, off = list(law.ci), 0.0
    else:
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(resamples):
            found = [
                optimum.find(g, optimum.seed_mean(t[rng.integers(0, len(t), len(t))]))
                for g, t in zip(grids, tails)
            ]
            if all(o.found for o in found):
                boots.append(fit_exponent(sizes, [o.lr for o in found])[0])
        off = 1 - len(boots) / resamples
        ci = [float(c) for c in np.percentile(boots, [2.5, 97.5])] if boots else [np.nan] * 2
    return {
        "exponent": slope,
        "coefficient": float(np.exp(intercept)),
        "ci": ci,
        "resamples_off_grid": off,
    }
