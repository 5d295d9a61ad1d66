"""One point of a transfer sweep: the model's size, its training length, batch and schedule.

A sweep along an axis moves a `GridPoint` (`GridPoint.scaled`); the schedule is stretched
to each length: its warm-up and decay are either fractions of the steps (they grow with
the run) or absolute step counts (they stay), the user picks, and the JSON says which.
"""

from __future__ import annotations

import dataclasses
from typing import Any

AXES = ("width", "depth", "steps", "batch_size")
SHAPES = ("constant", "cosine", "linear")
UNITS = ("fraction", "steps")
# What a batch-size target keeps from its proxy: the examples seen (steps x B0 / B), or steps.
BATCH_KEEPS = ("examples", "steps")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Peak LR x factor(step): linear warm-up, a stable phase, then `shape` decaying to 0
    over the last `decay` (the whole run after the warm-up when None).

    `unit`: "fraction" (warm-up and decay are fractions of the steps, stretched with them)
    or "steps" (absolute counts, the same at every length)."""

    shape: str = "constant"
    warmup: float = 0.0
    decay: float | None = None
    unit: str = "fraction"

    def warmup_steps(self, steps: int) -> int:
        return int(round(self.warmup * steps)) if self.unit == "fraction" else int(self.warmup)

    def decay_steps(self, steps: int) -> int:
        """Length of the decay phase (0 for a constant shape)."""
        if self.shape == "constant":
            return 0
        if self.decay is None:
            return steps - self.warmup_steps(steps)
        return int(round(self.decay * steps)) if self.unit == "fraction" else int(self.decay)

    def check(self, steps: int) -> None:
        """ValueError (one line) when the schedule does not fit `steps`."""
        if self.shape not in SHAPES:
            raise ValueError(f"unknown schedule {self.shape!r}; choose one of: {', '.join(SHAPES)}")
        if self.unit not in UNITS:
            raise ValueError(f"schedule unit {self.unit!r}: choose one of {', '.join(UNITS)}")
        if self.warmup < 0 or (self.decay is not None and self.decay < 0):
            raise ValueError("warm-up and decay must be >= 0")
        if self.unit == "fraction" and (self.warmup > 1 or (self.decay or 0) > 1):
            raise ValueError("warm-up and decay given as fractions must be <= 1")
        if self.unit == "steps" and (
            self.warmup != int(self.warmup) or (self.decay or 0) != int(self.decay or 0)
        ):
            raise ValueError("warm-up and decay given in steps must be whole numbers")
        if self.shape == "constant" and self.decay:
            raise ValueError("a constant schedule has no decay phase")
        used = self.warmup_steps(steps) + self.decay_steps(steps)
        if used > steps or (self.shape != "constant" and self.decay_steps(steps) < 1):
            raise ValueError(
                f"the schedule does not fit {steps} steps: warm-up {self.warmup_steps(steps)} "
                f"+ decay {self.decay_steps(steps)} steps"
            )

    @property
    def is_constant(self) -> bool:
        return self.shape == "constant" and self.warmup == 0

    def factor(self, steps: int):
        """count -> factor of the peak LR for the update after `count` earlier updates
        (warm-up (count + 1) / W, so the first update is not wasted)."""
        import jax.numpy as jnp

        warmup, decay = self.warmup_steps(steps), self.decay_steps(steps)
        start = steps - decay  # the decay phase: counts start .. steps - 1

        def factor(count):
            count = jnp.asarray(count, jnp.float32)
            t = jnp.clip((count - start) / max(decay, 1), 0.0, 1.0)
            if self.shape == "cosine":
                after = 0.5 * (1 + jnp.cos(jnp.pi * t))
            elif self.shape == "linear":
                after = 1 - t
            else:
                after = jnp.ones_like(t)
            if warmup <= 0:
                return after
            return jnp.where(count < warmup, (count + 1) / warmup, after)

        return factor

    def to_json(self, steps: int) -> dict[str, Any]:
        return dataclasses.asdict(self) | {
            "warmup_steps": self.warmup_steps(steps),
            "decay_steps": self.decay_steps(steps),
        }


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """Everything a (seed x hyperparameter) grid trains at, other than the swept values."""

    width: int
    depth: int
    steps: int
    batch_size: int
    optimizer: str
    schedule: Schedule = Schedule()

    def to_json(self) -> dict[str, Any]:
        return {axis: getattr(self, axis) for axis in AXES} | {
            "schedule": self.schedule.to_json(self.steps)
        }


def along(
    base: GridPoint, values: dict[str, list[int]], batch_keeps: str = "examples"
) -> list[GridPoint]:
    """The points of a sweep: point i takes `values[axis][i]` on every listed axis (all
    lists equally long; the first point is the proxy), `base` elsewhere. A batch-size
    change without a steps list keeps the examples seen (steps = base steps x B0 / B,
    B0 the first batch size) unless `batch_keeps="steps"`."""
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError("every swept axis needs the same number of values")
    unknown = set(values) - set(AXES)
    if unknown:
        raise ValueError(f"unknown axis {sorted(unknown)[0]!r}; choose from: {', '.join(AXES)}")
    points = []
    for i in range(lengths.pop()):
        changes = {axis: int(v[i]) for axis, v in values.items()}
        if "batch_size" in values and "steps" not in values and batch_keeps == "examples":
            first = values["batch_size"][0]
            changes["steps"] = max(1, int(round(base.steps * first / changes["batch_size"])))
        points.append(dataclasses.replace(base, **changes))
    return points
