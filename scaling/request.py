"""What a probe was asked (`Request`), what it returns (`Report`), and the table helpers
its report shares with the others."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from scaling.fit import fit_power_law
from scaling.setup import ProbeModel, geometric_grid
from scaling_training.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Request:
    """What the command line asked for."""

    spec: ProbeModel
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int = 3
    lr: float = 0.01
    steps: int = 3
    optimizer: str = "sgd"
    layers: str = ""  # regex: which layers enter the update criterion ("" = all)
    lrs: tuple[float, ...] = ()
    threshold: float = 0.9
    dataset: str = ""
    batch_size: int = 128
    rounds: int = 3
    out: str = ""
    log_mean: bool = False  # update: geometric seed means of eta* (Jelassi protocol)
    inputs: str = "synthetic"  # coord, update: "synthetic" or "data" (scaling/inputs.py)
    axes: Any = None  # transfer(_error) along other axes: scaling.axes_flags.AxesRequest

    def lr_grid(self, fine: bool = False) -> np.ndarray:
        """--lrs, or log-spaced LRs suited to the optimizer family: 10 (maxlr's bracket), or
        with `fine` (LR sweeps that locate an optimum) 19 spaced 2^(1/2) apart, 2^-7..2^2
        for SGD and 2^-13..2^-4 for Adam: a factor-2 grid moved MLP optima by up to 0.25
        log2 (its parabola is biased on asymmetric curves; WORKSPACE.md, noisy optima)."""
        if self.lrs:
            return np.array(sorted(self.lrs), float)
        if fine:
            top = 4.0 if self.spec.optimizer == "sgd" else 2.0**-4
            return top * 2.0 ** (-np.arange(18, -1, -1) / 2)
        low, high = (1e-3, 3.0) if self.spec.optimizer == "sgd" else (1e-4, 1e-1)
        return geometric_grid(low, high, 10)

    def data(self):
        import scaling_data as data

        return data.load(self.dataset)

    def grid(self):
        """The sweeps' GridSpec (scaling/grid.py): the model, its data and training."""
        from scaling.grid import GridSpec

        return GridSpec(
            self.spec, self.data(), self.seeds, self.steps, self.batch_size, self.optimizer
        )

    def swept(self) -> tuple[str, tuple[int, ...]]:
        """The one axis with several sizes, ('width' | 'depth', sizes)."""
        if len(self.widths) > 1 and len(self.depths) > 1:
            raise ConfigError("", "sweep widths or depths, not both (give one value for the other)")
        if len(self.widths) > 1:
            return "width", self.widths
        if len(self.depths) > 1:
            return "depth", self.depths
        raise ConfigError("", "needs at least two sizes: --widths=a,b,... or --depths=a,b,...")


@dataclasses.dataclass
class Report:
    record: dict[str, Any]
    table: str
    plot: Callable[[str], None]


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells)


def fmt_scatter(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def power_law(sizes, samples) -> dict:
    return fit_power_law(sizes, samples).to_json()


def law_line(what: str, law: dict) -> str:
    """e.g. 'eta_opt ~ width^-0.012  95% CI [-0.10, +0.08]'."""
    low, high = law["ci"]
    return f"{what}^{law['exponent']:+.3f}  95% CI [{low:+.3f}, {high:+.3f}]"
