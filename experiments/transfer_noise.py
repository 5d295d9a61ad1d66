"""How noisy is the `transfer` probe's optimum, and what resolves it?

    python experiments/transfer_noise.py runs/i13/sgd_sp/transfer.json [more.json ...]

Re-analyses a finished `python -m scaling transfer` run (no training) with:
  old:     each seed's argmin of the final train loss (one iterate, 2048 examples) refined
           by a parabola in ln LR, arithmetic mean over seeds (the probe before the loss tail);
  tail:    the probe now: seed-mean curve of the loss averaged over the last 10% of steps;
  tail/2:  the same on every other LR of the grid (twice the spacing);
  tail kS: the same with the first k seeds only.
Each line: the optimum per size and the exponent with its 95% seed-bootstrap interval.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from scaling import optimum, transfer
from scaling.fit import fit_power_law, parabola_vertex


def old_optima(lrs: np.ndarray, final: np.ndarray) -> list[float]:
    """Per seed: argmin of the final loss refined by the three-point parabola in ln LR."""
    final = np.where(np.isfinite(final), final, np.inf)
    return [float(np.exp(parabola_vertex(np.log(lrs), row, int(np.argmin(row))))) for row in final]


def line(name: str, sizes, optima, law) -> str:
    values = ", ".join("off grid" if o is None else f"{o:.3g}" for o in optima)
    if law["exponent"] is None:
        return f"{name:10s} {values}   exponent: undefined (an optimum off the grid)"
    low, high = law["ci"]
    return f"{name:10s} {values}   exponent {law['exponent']:+.2f} [{low:+.2f}, {high:+.2f}]"


def analyse(path: str) -> None:
    with open(path) as f:
        record = json.load(f)
    axis, lrs = record["axis"], np.asarray(record["lrs"], float)
    entries = record["results"]
    sizes = [e[axis] for e in entries]

    def array(e, key):
        return np.array([[np.inf if v is None else v for v in row] for row in e[key]], float)

    tails = [array(e, "tail_loss") for e in entries]
    seeds = tails[0].shape[0]
    grid = f"{len(lrs)} LRs {lrs[0]:.3g}..{lrs[-1]:.3g}"
    print(f"{path}: {record['model']} / {record['rule']}, {record['optimizer']}, "
          f"{record['steps']} steps, {seeds} seeds, {grid}")  # fmt: skip
    per_seed = [old_optima(lrs, array(e, "train_loss")) for e in entries]
    old = fit_power_law(sizes, per_seed).to_json()
    print(line("old", sizes, [float(np.mean(p)) for p in per_seed], old))
    scatter = [float(np.std(np.log2(p), ddof=1)) for p in per_seed]
    print(f"{'':10s} old per-seed scatter (log2): {', '.join(f'{s:.2f}' for s in scatter)}")
    variants = [("tail", lrs, tails), ("tail/2", lrs[::2], [t[:, ::2] for t in tails])]
    variants += [(f"tail {k}S", lrs, [t[:k] for t in tails]) for k in range(2, seeds)]
    for name, grid, losses in variants:
        law = transfer.exponent(sizes, grid, losses)
        optima = [optimum.find(grid, optimum.seed_mean(t)) for t in losses]
        print(line(name, sizes, [o.lr if o.found else None for o in optima], law))
    scatter = [e["seed_scatter_log2"] for e in entries]
    print(f"{'':10s} tail per-seed scatter (log2): {scatter}")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        analyse(argument)
