"""The optimal weight decay against width, pooled over `transfer_error --tune=weight_decay` JSONs.

Runs split over several commands (widths 64 + 512 in one, 128 in another) each hold some
widths; a width's result does not depend on the other widths of its run, so the points are
pooled (the first JSON that holds a width gives it) and fitted with
`scaling.transfer_axes.exponent` (power law of the seed-mean optima, 95% interval by
resampling seeds at every width). Prints one line per width and the fit.

    python experiments/wd_width_fit.py runs/axes/a/transfer_error.json runs/axes/b/...json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from scaling import optimum
from scaling.transfer_axes import exponent


def points(paths: list[str]) -> dict[int, tuple[list[float], np.ndarray]]:
    """width -> (decay grid, losses [seed, decay]) from the runs' proxies and targets."""
    out: dict[int, tuple[list[float], np.ndarray]] = {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        for entry in [run["proxy"], *run["targets"]]:
            out.setdefault(entry["width"], (entry["weight_decays"], np.asarray(entry["loss"])))
    return dict(sorted(out.items()))


def cliff(grid, mean, rise: float = 0.1) -> float | None:
    """The smallest decay above the curve's minimum at which the seed-mean loss has risen
    `rise` above that minimum, interpolated linearly in log2 between grid points (a flat
    curve that breaks off: where the decay starts to hurt). None if it never rises so far."""
    grid, mean = np.log2(np.asarray(grid, float)), np.asarray(mean, float)
    level = mean.min() + rise
    for i in range(int(np.argmin(mean)), len(grid) - 1):
        if mean[i + 1] >= level:
            t = (level - mean[i]) / (mean[i + 1] - mean[i])
            return float(2 ** (grid[i] + t * (grid[i + 1] - grid[i])))
    return None


def main(paths: list[str]) -> None:
    pts = points(paths)
    for width, (grid, loss) in pts.items():
        mean = optimum.seed_mean(loss)
        best = optimum.find(grid, mean)
        per = [optimum.find(grid, row) for row in loss]
        print(
            f"width {width}: wd_opt {best.lr:.4g} ({best.where}), loss {best.loss:.4f}, "
            f"seed scatter log2 {optimum.scatter_log2(per)}, cliff (+0.1) {cliff(grid, mean)}, "
            f"curve {' '.join(f'{g:g}:{m:.3f}' for g, m in zip(grid, mean))}"
        )
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        for t in run["targets"]:
            for name, c in t["choices"].items():
                print(
                    f"{path}: width {t['width']} at the {name}'s decay {c['value']:.4g}: "
                    f"transfer error log2 {c['transfer_error_log2']}, "
                    f"loss penalty {c['loss_penalty']}"
                )
    sizes = list(pts)
    fit = exponent(sizes, [p[0] for p in pts.values()], [p[1] for p in pts.values()])
    print(f"fit over widths {sizes}: {fit}")


if __name__ == "__main__":
    main(sys.argv[1:])
