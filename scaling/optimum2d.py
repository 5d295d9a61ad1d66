"""The best (LR, weight decay) of a swept loss surface.

The surface is the seed-mean of [seed, lr, wd] losses (inf where any seed diverged). Its
optimum is the grid argmin, each coordinate refined by the parabola (in log2) through the
argmin and its two neighbours along that coordinate (`optimum.refine`, kept within a grid
step). An argmin on an edge is reported off the grid along that coordinate, as in 1-D.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scaling import optimum


@dataclasses.dataclass(frozen=True)
class Optimum2D:
    lr: float
    weight_decay: float
    where_lr: str  # optimum.INSIDE / BELOW / ABOVE / DIVERGED
    where_weight_decay: str
    loss: float  # the lowest measured value (at the grid argmin)

    @property
    def found(self) -> bool:
        return self.where_lr == optimum.INSIDE and self.where_weight_decay == optimum.INSIDE


def _where(index: int, size: int) -> str:
    return optimum.BELOW if index == 0 else optimum.ABOVE if index == size - 1 else optimum.INSIDE


def find(lrs, wds, surface) -> Optimum2D:
    """Optimum of `surface[i, j]` over increasing `lrs[i]` and increasing `wds[j]` (> 0)."""
    lrs, wds = np.asarray(lrs, float), np.asarray(wds, float)
    surface = np.asarray(surface, float)
    if surface.shape != (lrs.size, wds.size) or lrs.size < 3 or wds.size < 3:
        raise ValueError("a 2-D optimum needs a [lr, wd] surface with >= 3 values of each")
    if np.any(np.diff(lrs) <= 0) or np.any(np.diff(wds) <= 0) or wds[0] <= 0:
        raise ValueError("learning rates and weight decays must be positive and increasing")
    surface = np.where(np.isfinite(surface), surface, np.inf)
    if not np.isfinite(surface).any():
        nan = float("nan")
        return Optimum2D(nan, nan, optimum.DIVERGED, optimum.DIVERGED, nan)
    i, j = np.unravel_index(int(np.argmin(surface)), surface.shape)
    where_lr, where_wd = _where(i, lrs.size), _where(j, wds.size)
    lr, wd = float(lrs[i]), float(wds[j])  # an edge stays the grid's value
    if where_lr == optimum.INSIDE:
        lr = float(2 ** optimum.refine(np.log2(lrs), surface[:, j], i)[0])
    if where_wd == optimum.INSIDE:
        wd = float(2 ** optimum.refine(np.log2(wds), surface[i, :], j)[0])
    return Optimum2D(lr, wd, where_lr, where_wd, float(surface[i, j]))


def scatter(optima: list[Optimum2D]) -> dict[str, float | None]:
    """Seed scatter (std in log2) of each coordinate over the per-seed optima that are
    inside the grid along it."""
    return {
        "lr": optimum.log2_scatter([o.lr for o in optima if o.where_lr == optimum.INSIDE]),
        "weight_decay": optimum.log2_scatter(
            [o.weight_decay for o in optima if o.where_weight_decay == optimum.INSIDE]
        ),
    }
