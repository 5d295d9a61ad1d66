"""LR transfer: where is the best learning rate at each width (or depth)?

For every size, a vmapped sweep over LRs and seeds; each seed's optimum is the grid
argmin of the final training loss refined by a parabola in log LR. The exponent of
eta_opt against size has a bootstrap interval over seeds. muP: ~0 in width; SP: < 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.fit import parabola_vertex
from scaling.grid import train_grid


def optimum(lrs, losses) -> float:
    """The refined argmin of one seed's loss curve; NaN when every LR diverged."""
    losses = np.asarray(losses, float)
    if not np.isfinite(losses).any():
        return float("nan")
    log_lrs = np.log(lrs)
    best = int(np.argmin(losses))
    return float(np.exp(parabola_vertex(log_lrs, losses, best)))


def measure(
    spec,
    sizes,
    axis: str,
    fixed: int,
    lrs,
    seeds: int,
    dataset,
    steps: int,
    batch_size: int,
    optimizer: str,
    echo=print,
) -> dict[str, Any]:
    """Sweep `lrs` at every size along `axis` ("width" or "depth", the other held at `fixed`)."""
    results = []
    for size in sizes:
        width, depth = (size, fixed) if axis == "width" else (fixed, size)
        grid = train_grid(spec, width, depth, lrs, seeds, dataset, steps, batch_size, optimizer)
        optima = [optimum(lrs, grid.train_loss[s]) for s in range(seeds)]
        edge = [int(np.argmin(grid.train_loss[s])) in (0, len(lrs) - 1) for s in range(seeds)]
        inside = [np.log2(o) for o, e in zip(optima, edge) if np.isfinite(o) and not e]
        results.append(
            {
                axis: size,
                "train_loss": np.where(grid.diverged, np.nan, grid.train_loss).tolist(),
                "test_accuracy": grid.test_accuracy.tolist(),
                "diverged": grid.diverged.tolist(),
                "eta_opt": optima,
                "optimum_at_grid_edge": edge,
                # std over seeds of log2 eta_opt (optima inside the grid only)
                "seed_scatter_log2": float(np.std(inside, ddof=1)) if len(inside) > 1 else None,
            }
        )
        echo(
            f"{axis} {size}: eta_opt {np.nanmean(optima):.4g} (seeds: "
            + ", ".join(f"{o:.3g}" for o in optima)
            + ")"
        )
    return {"lrs": [float(lr) for lr in lrs], "results": results}
