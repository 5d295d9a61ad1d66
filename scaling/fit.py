"""Power laws: least squares in log-log space, with bootstrap intervals."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y ~ coefficient * x^exponent; `ci` is a (low, high) interval of the exponent."""

    exponent: float
    coefficient: float
    ci: tuple[float, float]

    def to_json(self) -> dict:
        return {"exponent": self.exponent, "coefficient": self.coefficient, "ci": list(self.ci)}


def fit_exponent(x, y) -> tuple[float, float]:
    """(slope, intercept) of log y against log x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError("a power-law fit needs at least two different sizes")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("a power-law fit needs positive, finite values")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def fit_power_law(
    x, samples, confidence: float = 0.95, resamples: int = 1000, seed: int = 0, log_mean=False
):
    """Fit y ~ c x^p to `samples[i, s]` (size i, seed s): the exponent of the seed means,
    and a percentile bootstrap interval resampling seeds independently at each size.
    `log_mean`: geometric seed means (for heavy-tailed samples such as one-output eta*)."""
    samples = np.asarray(samples, float)
    if samples.ndim == 1:
        samples = samples[:, None]
    center = seed_mean(samples, log_mean)
    exponent, intercept = fit_exponent(x, center)
    rng = np.random.default_rng(seed)
    num_seeds = samples.shape[1]
    if num_seeds == 1:
        interval = _regression_interval(x, samples[:, 0], confidence)
        return PowerLaw(exponent, float(np.exp(intercept)), interval)
    boots = []
    for _ in range(resamples):
        picks = rng.integers(0, num_seeds, samples.shape)
        means = seed_mean(np.take_along_axis(samples, picks, axis=1), log_mean)
        boots.append(fit_exponent(x, means)[0])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return PowerLaw(exponent, float(np.exp(intercept)), (float(low), float(high)))


def seed_mean(samples, log_mean: bool = False) -> np.ndarray:
    """Mean over the last axis, the seeds ([size, seed] -> [size], [seed] -> a scalar):
    arithmetic, or geometric with `log_mean`."""
    samples = np.asarray(samples, float)
    return np.exp(np.log(samples).mean(axis=-1)) if log_mean else samples.mean(axis=-1)


def _regression_interval(x, y, confidence: float) -> tuple[float, float]:
    """One value per size: the t interval of the least-squares slope (NaN with < 3 sizes)."""
    from scipy import stats

    log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if log_x.size < 3:
        return (float("nan"), float("nan"))
    slope, intercept = np.polyfit(log_x, log_y, 1)
    residuals = log_y - (slope * log_x + intercept)
    spread = np.sum((log_x - log_x.mean()) ** 2)
    error = np.sqrt(np.sum(residuals**2) / (log_x.size - 2) / spread)
    half = stats.t.ppf(0.5 + confidence / 2, log_x.size - 2) * error
    return (float(slope - half), float(slope + half))


def parabola_vertex(log_lrs, losses, best: int) -> float:
    """Refine an argmin on a grid by the vertex of the parabola through it and its neighbours
    (in log LR). At the grid's edge, or for a non-convex triple, the grid point stands."""
    if best == 0 or best == len(losses) - 1:
        return float(log_lrs[best])
    x, y = np.asarray(log_lrs[best - 1 : best + 2]), np.asarray(losses[best - 1 : best + 2])
    if not np.all(np.isfinite(y)):
        return float(log_lrs[best])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return float(log_lrs[best])
    return float(np.clip(-b / (2 * a), x[0], x[2]))
