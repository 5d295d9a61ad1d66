"""LR corrections for a target that trains longer or with another batch than its proxy.

The measurement's names for the run transforms of `rules.axes` (the factors are theirs):

- `horizon:BETA`: lr x (S / S0)^-BETA (Bjorck et al. 2024 fit LR*(D) ~ D^-beta across
  token horizons, beta ~ 0.3 in several reports);
- `batch:sqrt`: lr x sqrt(B / B0), Adam's SDE scaling below the critical batch (Malladi et
  al. 2022); `batch:linear`: lr x B / B0, SGD's linear scaling rule.

A list of them multiplies (each acts only on its own axis).
"""

from __future__ import annotations

import dataclasses

from rules import axes

KINDS = ("horizon", "batch")
BATCH_POWERS = {"sqrt": 0.5, "linear": 1.0}


@dataclasses.dataclass(frozen=True)
class Correction:
    kind: str  # "horizon" or "batch"
    power: float  # horizon: -beta is applied; batch: (B / B0)^power

    @property
    def name(self) -> str:
        if self.kind == "horizon":
            return f"horizon:{self.power:g}"
        named = {v: k for k, v in BATCH_POWERS.items()}
        return f"batch:{named.get(self.power, f'{self.power:g}')}"

    def factor(self, proxy, target) -> float:
        """The LR multiplier from `proxy` to `target` (GridPoints), by `rules.axes`."""
        transform = (axes.horizon_lr if self.kind == "horizon" else axes.batch_lr)(self.power)
        shape = axes.RunShape(
            steps=target.steps,
            batch_size=target.batch_size,
            base_steps=proxy.steps,
            base_batch_size=proxy.batch_size,
        )
        return transform(shape, axes.RunScales()).lr


def parse(text: str) -> Correction:
    """'horizon:0.3', 'batch:sqrt', 'batch:linear' (or 'batch:0.5'); ValueError otherwise."""
    kind, _, value = text.partition(":")
    if kind not in KINDS or not value:
        raise ValueError(
            f"unknown correction {text!r}: give horizon:BETA, batch:sqrt or batch:linear"
        )
    try:
        power = BATCH_POWERS[value] if kind == "batch" and value in BATCH_POWERS else float(value)
    except ValueError:
        raise ValueError(f"correction {text!r}: {value!r} is not a number") from None
    return Correction(kind, power)


def combined_factor(corrections, proxy, target) -> float:
    factor = 1.0
    for c in corrections:
        factor *= c.factor(proxy, target)
    return factor
