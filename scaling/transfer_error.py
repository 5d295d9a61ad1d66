"""The transfer promise as one number: tune the LR on a proxy, how far off is it on the target?

The proxy (the first size) and every target are swept over one geometric LR grid, each
member's loss being its training loss averaged over the last 10% of steps; the optimum is
that of the seed-mean curve (`scaling.optimum`). An optimum on the grid's edge widens the
grid on that side and sweeps again (up to `widen` times) before it is reported off the grid.
Each target also trains at exactly the proxy's optimum, so the loss penalty of using the
proxy's LR is measured, not interpolated. Transfer error = |log2(lr_proxy / lr_target)|.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from scaling import optimum
from scaling.grid import GridSpec, train_grid


def sweep(
    grid: GridSpec, width, depth, lrs, widen, echo, extra_lr: float | None = None
) -> dict[str, Any]:
    """Sweep `lrs` (widening past an edge optimum) and find the optimum; with `extra_lr`, also
    the seed-mean loss at that LR (trained as one more member of the last sweep)."""
    lrs = np.asarray(lrs, float)
    start = time.perf_counter()
    for attempt in range(widen + 1):
        members = list(lrs) + ([extra_lr] if extra_lr is not None else [])
        trained = train_grid(grid, width, depth, members, score=False)
        tail = trained.tail_loss[:, : len(lrs)]
        best = optimum.find(lrs, optimum.seed_mean(tail))
        if best.where not in (optimum.BELOW, optimum.ABOVE) or attempt == widen:
            break
        echo(f"  optimum {best.where} at {best.lr:.3g}: widening the grid")
        lrs = optimum.widened(lrs, best.where, 3)
    per_seed = [optimum.find(lrs, row) for row in tail]
    result = {
        "width": width,
        "depth": depth,
        "lrs": lrs.tolist(),
        "loss": tail.tolist(),  # [seed][lr], mean over the last 10% of steps; inf = diverged
        "lr_opt": best.lr,
        "where": best.where,
        "loss_at_opt": best.loss,
        # a model no LR trains still has a least-bad LR: say whether any beat chance, ln(C)
        "beats_chance": bool(best.loss < np.log(grid.model.num_classes))
        if np.isfinite(best.loss)
        else None,
        "lr_opt_per_seed": [o.lr if o.found else None for o in per_seed],
        "where_per_seed": [o.where for o in per_seed],
        "seed_scatter_log2": optimum.scatter_log2(per_seed),
        "seconds": time.perf_counter() - start,
    }
    if extra_lr is not None:
        at_proxy_lr = trained.tail_loss[:, -1]
        result["loss_at_proxy_lr"] = float(optimum.seed_mean(at_proxy_lr[:, None])[0])
        result["diverged_at_proxy_lr"] = int((~np.isfinite(at_proxy_lr)).sum())  # seeds
    return result


def measure(
    grid: GridSpec, sizes, axis: str, fixed: int, lrs, widen: int = 2, echo=print
) -> dict[str, Any]:
    """Proxy = sizes[0], targets = sizes[1:], along `axis` ("width" or "depth")."""

    def shape(size):
        return (size, fixed) if axis == "width" else (fixed, size)

    proxy = sweep(grid, *shape(sizes[0]), lrs, widen, echo) | {axis: sizes[0]}
    echo(
        f"proxy {axis} {sizes[0]}: lr_opt {proxy['lr_opt']:.4g} ({proxy['where']}), "
        f"{proxy['seconds']:.1f} s"
    )
    extra = proxy["lr_opt"] if np.isfinite(proxy["lr_opt"]) else None
    targets = []
    for size in sizes[1:]:
        target = sweep(grid, *shape(size), proxy["lrs"], widen, echo, extra)
        target |= {axis: size}
        both_found = proxy["where"] == optimum.INSIDE and target["where"] == optimum.INSIDE
        target["transfer_error_log2"] = (
            abs(float(np.log2(proxy["lr_opt"] / target["lr_opt"]))) if both_found else None
        )
        target["error_bound_log2"] = _bound(proxy, target)
        target["loss_penalty"] = (
            target["loss_at_proxy_lr"] - target["loss_at_opt"]
            if extra is not None
            and target["where"] == optimum.INSIDE
            and not target["diverged_at_proxy_lr"]
            else None
        )
        echo(
            f"target {axis} {size}: lr_opt {target['lr_opt']:.4g} ({target['where']}), "
            f"error {_fmt(target['transfer_error_log2'], target['error_bound_log2'])}"
        )
        targets.append(target)
    return {"axis": axis, "proxy": proxy, "targets": targets}


def _bound(proxy: dict, target: dict) -> float | None:
    """With the target's optimum off the grid: the error is at least this (log2)."""
    if proxy["where"] != optimum.INSIDE or target["where"] not in (optimum.BELOW, optimum.ABOVE):
        return None
    return abs(float(np.log2(proxy["lr_opt"] / target["lr_opt"])))


def _fmt(error: float | None, bound: float | None) -> str:
    if error is not None:
        return f"{error:.2f}"
    return f">= {bound:.2f} (off the grid)" if bound is not None else "undefined"
