"""Maximal initial learning rate (Iyer, Hanin & Rolnick 2023).

The largest constant LR at which training from init reaches a threshold test accuracy
within a step budget. Each round trains a geometric grid of LRs at once (all seeds
vmapped too) and narrows the bracket between the largest LR that succeeded and the next
one that failed. A grid whose every LR fails, or whose largest succeeds, says so
("not found in range") instead of returning an edge value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.grid import GridSpec, train_grid
from scaling.optimum import log2_scatter
from scaling.setup import geometric_grid


def search(
    grid: GridSpec,
    width: int,
    depth: int,
    low: float,
    high: float,
    points: int,
    rounds: int,
    threshold: float,
) -> dict[str, Any]:
    """Bracket eta* for one (width, depth); success = mean test accuracy over seeds >= threshold."""
    tried: list[tuple[float, float]] = []
    per_seed: list[tuple[float, list[float]]] = []
    lrs = geometric_grid(low, high, points)
    for _ in range(rounds):
        trained = train_grid(grid, width, depth, lrs)
        accuracy = trained.test_accuracy.mean(axis=0)
        tried += list(zip(lrs.tolist(), accuracy.tolist()))
        per_seed += list(zip(lrs.tolist(), trained.test_accuracy.T.tolist()))
        ok = accuracy >= threshold
        if not ok.any():
            return _result(None, "below range", tried, threshold, per_seed)
        top = int(np.flatnonzero(ok).max())
        if top == len(lrs) - 1:
            return _result(float(lrs[top]), "above range", tried, threshold, per_seed)
        lrs = geometric_grid(lrs[top], lrs[top + 1], points + 2)[1:-1]
    best = max(lr for lr, acc in tried if acc >= threshold)
    return _result(best, "found", tried, threshold, per_seed)


def seed_optima(per_seed: list[tuple[float, list[float]]], threshold: float) -> list:
    """Each seed's largest tried LR that reached `threshold` (None if none did)."""
    seeds = len(per_seed[0][1]) if per_seed else 0
    return [
        max((lr for lr, acc in per_seed if acc[s] >= threshold), default=None) for s in range(seeds)
    ]


def _result(eta, status, tried, threshold, per_seed) -> dict[str, Any]:
    """`eta_star` only when bracketed; `lower_bound` when even the top of the grid succeeded.
    Per seed: each seed's own largest successful LR among those tried, and their log2 std."""
    optima = seed_optima(per_seed, threshold)
    return {
        "eta_star_per_seed": optima,
        "seed_scatter_log2": log2_scatter(optima),
        "eta_star": eta if status == "found" else None,
        "lower_bound": eta if status == "above range" else None,
        "status": status,
        "threshold": threshold,
        "tried": sorted(tried),
    }
