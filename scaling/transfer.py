"""LR transfer: where is the best learning rate at each width (or depth)?

For every size, a vmapped sweep over LRs and seeds. Each member's loss is its training loss
averaged over the last 10% of steps (one SGD step's batch noise would otherwise move the
argmin by a grid step); the optimum of a size is that of the seed-mean curve, refined by a
parabola in log2 LR (`scaling.optimum`), and "below/above grid" when the curve's argmin is
an edge. Per-seed optima, found the same way on each seed's curve, give the seed scatter.
The exponent of eta_opt against size is fitted to the seed-mean optima, with a bootstrap
interval that resamples seeds (and recomputes the seed-mean curves) at every size.
muP: ~0 in width; SP: < 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling import optimum
from scaling.fit import fit_exponent, fit_power_law
from scaling.grid import GridSpec, train_grid


def measure(grid: GridSpec, sizes, axis: str, fixed: int, lrs, echo=print) -> dict[str, Any]:
    """Sweep `lrs` over `grid`'s seeds at every size along `axis` ("width" or "depth", the
    other held at `fixed`)."""
    lrs = np.asarray(lrs, float)
    results = []
    for size in sizes:
        width, depth = (size, fixed) if axis == "width" else (fixed, size)
        trained = train_grid(grid, width, depth, lrs)
        tail = trained.tail_loss
        best = optimum.find(lrs, optimum.seed_mean(tail))
        per_seed = [optimum.find(lrs, row) for row in tail]
        off = (optimum.BELOW, optimum.ABOVE)
        results.append(
            {
                axis: size,
                "tail_loss": tail.tolist(),  # [seed][lr]; inf (null in JSON) = diverged
                "train_loss": np.where(trained.diverged, np.nan, trained.train_loss).tolist(),
                "test_accuracy": trained.test_accuracy.tolist(),
                "diverged": trained.diverged.tolist(),
                "lr_opt": best.lr if best.found else None,  # of the seed-mean curve
                "where": best.where,
                # per seed: the grid edge when that seed's argmin sits there (see where_per_seed)
                "eta_opt": [o.lr for o in per_seed],
                "where_per_seed": [o.where for o in per_seed],
                "optimum_at_grid_edge": [o.where in off for o in per_seed],
                "seed_scatter_log2": optimum.scatter_log2(per_seed),
            }
        )
        where = f"{best.lr:.4g}" if best.found else best.where
        echo(
            f"{axis} {size}: lr_opt {where} (per seed: "
            + ", ".join(f"{o.lr:.3g}" if o.found else o.where for o in per_seed)
            + ")"
        )
    return {"lrs": lrs.tolist(), "results": results}


def exponent(sizes, lrs, tails, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Power law of the seed-mean optima over `sizes` (`tails[i]`: size i's [seed, lr] losses).

    The interval resamples seeds with replacement at every size and recomputes each optimum;
    resamples whose optimum leaves the grid are dropped (their share is `resamples_off_grid`).
    With one seed, the regression interval of `fit_power_law` stands in. Exponent None when
    some size has no optimum inside the grid."""
    tails = [np.asarray(t, float) for t in tails]
    optima = [optimum.find(lrs, optimum.seed_mean(t)) for t in tails]
    if not all(o.found for o in optima):
        return {"exponent": None, "ci": None, "resamples_off_grid": None}
    values = [o.lr for o in optima]
    if tails[0].shape[0] == 1:
        law = fit_power_law(sizes, values)
        return {"exponent": law.exponent, "ci": list(law.ci), "resamples_off_grid": 0.0}
    rng = np.random.default_rng(seed)
    boots, dropped = [], 0
    for _ in range(resamples):
        found = [
            optimum.find(lrs, optimum.seed_mean(t[rng.integers(0, t.shape[0], t.shape[0])]))
            for t in tails
        ]
        if all(o.found for o in found):
            boots.append(fit_exponent(sizes, [o.lr for o in found])[0])
        else:
            dropped += 1
    slope = fit_exponent(sizes, values)[0]
    ci = list(np.percentile(boots, [2.5, 97.5])) if boots else [float("nan")] * 2
    ci = [float(c) for c in ci]
    return {"exponent": slope, "ci": ci, "resamples_off_grid": dropped / resamples}
