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

from scaling.grid import train_grid
from scaling.setup import geometric_grid


def search(
    spec,
    width: int,
    depth: int,
    low: float,
    high: float,
    points: int,
    rounds: int,
    threshold: float,
    seeds: int,
    dataset,
    steps: int,
    batch_size: int,
    optimizer: str,
) -> dict[str, Any]:
    """Bracket eta* for one (width, depth); success = mean test accuracy over seeds >= threshold."""
    tried: list[tuple[float, float]] = []
    lrs = geometric_grid(low, high, points)
    for _ in range(rounds):
        grid = train_grid(spec, width, depth, lrs, seeds, dataset, steps, batch_size, optimizer)
        accuracy = grid.test_accuracy.mean(axis=0)
        tried += list(zip(lrs.tolist(), accuracy.tolist()))
        ok = accuracy >= threshold
        if not ok.any():
            return _result(None, "below range", tried, threshold)
        top = int(np.flatnonzero(ok).max())
        if top == len(lrs) - 1:
            return _result(float(lrs[top]), "above range", tried, threshold)
        lrs = geometric_grid(lrs[top], lrs[top + 1], points + 2)[1:-1]
    best = max(lr for lr, acc in tried if acc >= threshold)
    return _result(best, "found", tried, threshold)


def _result(eta, status, tried, threshold) -> dict[str, Any]:
    """`eta_star` only when bracketed; `lower_bound` when even the top of the grid succeeded."""
    return {
        "eta_star": eta if status == "found" else None,
        "lower_bound": eta if status == "above range" else None,
        "status": status,
        "threshold": threshold,
        "tried": sorted(tried),
    }
