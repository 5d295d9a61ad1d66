"""The best learning rate of a swept loss curve, robustly.

Losses arrive as [seed, lr] (each already averaged over the last steps of training). The
optimum is the argmin of the seed-mean curve, refined by the parabola in log2 LR through
the argmin and its two neighbours, and kept within one grid step of the argmin (a wider
least-squares fit was tried: a divergence wall on one side drags its vertex by a grid
step). An argmin at either end of the grid is not an optimum: it is reported as "below"
or "above" the grid, never as a number that looks found. The per-seed optima, refined the
same way, give the seed scatter (their std in log2 LR).
"""

from __future__ import annotations

import dataclasses

import numpy as np

INSIDE, BELOW, ABOVE, DIVERGED = "inside", "below grid", "above grid", "every lr diverged"


@dataclasses.dataclass(frozen=True)
class Optimum:
    """Where a loss curve is lowest.

    lr: the refined optimum (the grid edge when `where` is not "inside").
    where: "inside", "below grid" (the smallest LR was best), "above grid", or
      "every lr diverged".
    loss: the lowest measured value of the curve (at the grid argmin; a parabola's minimum
      is not used, it undershoots V-shaped curves and can go negative).
    """

    lr: float
    where: str
    loss: float

    @property
    def found(self) -> bool:
        return self.where == INSIDE


def refine(log2_lrs: np.ndarray, losses: np.ndarray, best: int, reach: int = 1) -> tuple:
    """(log2 lr, loss) at the vertex of a parabola fitted to `best` and its finite neighbours
    (`reach` on each side; 1 = the three-point parabola).

    Falls back to the grid point when fewer than three finite points surround it or the
    fitted parabola does not open upwards; the vertex is clipped to one grid step around it.
    """
    lo, hi = max(best - reach, 0), min(best + reach + 1, len(losses))
    x, y = log2_lrs[lo:hi], losses[lo:hi]
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or not (x.min() < log2_lrs[best] < x.max()):
        return float(log2_lrs[best]), float(losses[best])
    a, b, c = np.polyfit(x - log2_lrs[best], y, 2)
    if a <= 0:
        return float(log2_lrs[best]), float(losses[best])
    step_left = log2_lrs[best] - log2_lrs[best - 1]
    step_right = log2_lrs[best + 1] - log2_lrs[best]
    offset = float(np.clip(-b / (2 * a), -step_left, step_right))
    return float(log2_lrs[best] + offset), float(min(a * offset**2 + b * offset + c, losses[best]))


def find(lrs, losses) -> Optimum:
    """The optimum of one curve `losses[i]` over increasing `lrs[i]` (inf/NaN = diverged)."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    if lrs.ndim != 1 or lrs.shape != losses.shape or lrs.size < 3:
        raise ValueError("an optimum needs one loss per learning rate and at least 3 of them")
    if np.any(np.diff(lrs) <= 0):
        raise ValueError("learning rates must be increasing")
    losses = np.where(np.isfinite(losses), losses, np.inf)
    if not np.isfinite(losses).any():
        return Optimum(float("nan"), DIVERGED, float("nan"))
    best = int(np.argmin(losses))
    if best == 0:
        return Optimum(float(lrs[0]), BELOW, float(losses[0]))
    if best == lrs.size - 1:
        return Optimum(float(lrs[-1]), ABOVE, float(losses[-1]))
    log2_lr, _ = refine(np.log2(lrs), losses, best)
    return Optimum(float(2**log2_lr), INSIDE, float(losses[best]))


def seed_mean(losses) -> np.ndarray:
    """[seed, lr] -> [lr]: the mean over seeds; inf where any seed diverged."""
    losses = np.asarray(losses, float)
    finite = np.isfinite(losses).all(axis=0)
    return np.where(finite, np.where(np.isfinite(losses), losses, 0.0).mean(axis=0), np.inf)


def scatter_log2(optima: list[Optimum]) -> float | None:
    """Std of the per-seed optima in log2 LR (None with fewer than two found)."""
    return log2_scatter([o.lr for o in optima if o.found])


def log2_scatter(values) -> float | None:
    """Std over seeds of log2 of the positive finite values (None, 0, inf, NaN left out);
    None with fewer than two."""
    logs = [float(np.log2(v)) for v in values if v and np.isfinite(v) and v > 0]
    return float(np.std(logs, ddof=1)) if len(logs) > 1 else None


def interpolate(lrs, curve, lr: float) -> float:
    """The curve's value at `lr`, linear in log2 LR (inf outside the grid or next to inf)."""
    lrs, curve = np.asarray(lrs, float), np.asarray(curve, float)
    x = np.log2(lr)
    grid = np.log2(lrs)
    if not grid[0] <= x <= grid[-1]:
        return float("inf")
    i = int(np.clip(np.searchsorted(grid, x) - 1, 0, grid.size - 2))
    left, right = curve[i], curve[i + 1]
    if not (np.isfinite(left) and np.isfinite(right)):
        return float("inf")
    t = (x - grid[i]) / (grid[i + 1] - grid[i])
    return float(left + t * (right - left))


def widened(lrs, where: str, points: int) -> np.ndarray:
    """`lrs` extended by `points` more grid steps past the edge the optimum sat on."""
    lrs = np.asarray(lrs, float)
    ratio = lrs[1] / lrs[0]
    if where == BELOW:
        return np.concatenate([lrs[0] * ratio ** np.arange(-points, 0), lrs])
    if where == ABOVE:
        return np.concatenate([lrs, lrs[-1] * ratio ** np.arange(1, points + 1)])
    return lrs
