"""The flags of transfer / transfer_error along axes other than width and depth.

`--axis` names the swept axes (several for combined targets: --axis=width,steps zips
--widths and --lengths point by point, the first point being the proxy); `--tune` what is
tuned. Without any of these flags the probes run as before (width or depth, LR only, and
the same JSON). Every value is checked here, before anything trains: `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math

from absl import flags

from rules.axes import DECAY_WIDTH_SCALINGS, WEIGHT_DECAY_MODES, decay_width
from scaling import corrections as corr
from scaling.point import AXES, BATCH_KEEPS, SHAPES, UNITS, GridPoint, Schedule, along
from scaling.transfer_axes import OBJECTIVES, TUNES
from scaling_training.errors import ConfigError

flags.DEFINE_list(
    "axis", ["width"], f"transfer, transfer_error: swept axes, one or several of {', '.join(AXES)}"
)
flags.DEFINE_enum("tune", "lr", list(TUNES), "tuned: the LR, the weight decay, or both")
flags.DEFINE_list("lengths", [], "--axis=steps: the training lengths, the proxy's first")
flags.DEFINE_list("batch_sizes", [], "--axis=batch_size: the batch sizes, the proxy's first")
flags.DEFINE_enum(
    "batch_keeps",
    "examples",
    list(BATCH_KEEPS),
    "a batch-size target keeps its proxy's examples seen (steps x B0 / B) or its steps",
)
flags.DEFINE_enum("schedule", "constant", list(SHAPES), "LR schedule (stretched to each length)")
flags.DEFINE_float("warmup", 0.0, "warm-up: a fraction of the steps, or steps (--schedule_unit)")
flags.DEFINE_float(
    "decay", -1.0, "decay phase at the end: a fraction or steps; -1 = all after the warm-up"
)
flags.DEFINE_enum(
    "schedule_unit", "fraction", list(UNITS), "warm-up and decay as fractions of the steps, "
    "stretched with them, or absolute steps"
)  # fmt: skip
flags.DEFINE_list(
    "weight_decays", [], "--tune=weight_decay/both: the grid ('' = 2^-8..2^2 in octaves)"
)
flags.DEFINE_float("weight_decay", -1.0, "the decay while tuning the LR (-1 = none: no decay term)")
flags.DEFINE_string(
    "weight_decay_mode", "coupled", "coupled (decay per step lr x wd, as AdamW) or independent "
    "(per step wd times the schedule's factor, not the LR)",
)  # fmt: skip
flags.DEFINE_string(
    "weight_decay_width", "", "per-layer decay across width; coupled: completep (default: decay "
    "per step the same at every width, CompleteP's wd x n for an LR / n) or constant (wd x each "
    "layer's LR multiplier, as torch AdamW); independent: constant (default) or inverse_width "
    "(wd / n on hidden and readout weights, Qiu et al.)",
)  # fmt: skip
flags.DEFINE_enum(
    "objective", "train", list(OBJECTIVES),
    "train: training loss over the last 10% of steps; test: test loss after the last step",
)  # fmt: skip
flags.DEFINE_list(
    "correction", [], "LR corrections measured beside the proxy's LR: horizon:BETA, batch:sqrt, "
    "batch:linear"
)  # fmt: skip

NEW_FLAGS = (
    "axis", "tune", "lengths", "batch_sizes", "schedule", "warmup", "decay", "weight_decays",
    "weight_decay", "objective", "correction", "weight_decay_mode", "weight_decay_width",
)  # fmt: skip
DEFAULT_WEIGHT_DECAYS = tuple(2.0**k for k in range(-8, 3))


@dataclasses.dataclass(frozen=True)
class AxesRequest:
    """A transfer along `axes`: the points (proxy first), what is tuned, the corrections."""

    axes: tuple[str, ...]
    points: tuple[GridPoint, ...]
    tune: str
    weight_decays: tuple[float, ...]
    weight_decay: float | None
    objective: str
    corrections: tuple[corr.Correction, ...]
    batch_keeps: str
    weight_decay_mode: str = "coupled"
    weight_decay_width: str = "completep"  # resolved: never "" here

    @property
    def grid_size(self) -> int:
        """Members per seed of the largest sweep (for the memory check)."""
        return len(self.weight_decays) if self.tune != "lr" else 1


def is_new_style(f) -> bool:
    """Whether any axis flag was given with other than the old behaviour's value."""
    return any(f[name].present for name in NEW_FLAGS) and not (
        list(f.axis) in (["width"], ["depth"])
        and not any(f[name].present for name in NEW_FLAGS if name != "axis")
    )


def check_old_axis(f, widths, depths) -> None:
    """--axis=width or --axis=depth alone (the old probe): the named axis must be the swept one."""
    if not f["axis"].present:
        return
    (axis,) = f.axis
    sizes, other = (widths, depths) if axis == "width" else (depths, widths)
    if len(sizes) < 2 or len(other) > 1:
        flag = "widths" if axis == "width" else "depths"
        raise ConfigError(
            "axis", f"--axis={axis} sweeps --{flag}: give it several values, the other one"
        )


def _ints(f, name: str) -> list[int]:
    try:
        values = [int(v) for v in f[name].value]
    except ValueError:
        raise ConfigError(
            name, f"expected integers separated by commas, got {f[name].value}"
        ) from None
    if any(v < 1 for v in values):
        raise ConfigError(name, "values must be >= 1")
    return values


def parse(f, widths, depths, steps: int, optimizer: str) -> AxesRequest:
    """The axes request of the flags (ConfigError on any bad value)."""
    axes = tuple(f.axis)
    for axis in axes:
        if axis not in AXES:
            raise ConfigError("axis", f"unknown axis {axis!r}; choose from: {', '.join(AXES)}")
    if not axes or len(set(axes)) != len(axes):
        raise ConfigError("axis", "give each axis once")
    lists = {
        "width": list(widths),
        "depth": list(depths),
        "steps": _ints(f, "lengths"),
        "batch_size": _ints(f, "batch_sizes"),
    }
    flag_of = {
        "width": "widths",
        "depth": "depths",
        "steps": "lengths",
        "batch_size": "batch_sizes",
    }
    for axis in axes:
        if len(lists[axis]) < 2:
            raise ConfigError(flag_of[axis], f"--axis={axis} needs at least two values")
    for axis in set(AXES) - set(axes) - {"steps", "batch_size"}:
        if len(lists[axis]) > 1:
            raise ConfigError(flag_of[axis], f"several values but {axis} is not in --axis")
    for axis in ("steps", "batch_size"):
        if axis not in axes and lists[axis]:
            raise ConfigError(flag_of[axis], f"given but {axis} is not in --axis")
    if len({len(lists[a]) for a in axes}) != 1:
        raise ConfigError("axis", "every swept axis needs the same number of values (zipped)")
    decay = None if f.decay == -1 else f.decay
    schedule = Schedule(f.schedule, f.warmup, decay, f.schedule_unit)
    base = GridPoint(
        widths[0], depths[0], lists["steps"][0] if "steps" in axes else steps,
        lists["batch_size"][0] if "batch_size" in axes else f.batch_size, optimizer, schedule,
    )  # fmt: skip
    points = along(base, {a: lists[a] for a in axes}, f.batch_keeps)
    for point in points:
        try:
            point.schedule.check(point.steps)
        except ValueError as e:
            raise ConfigError("schedule", str(e)) from None
    try:
        wds = tuple(sorted(float(v) for v in f.weight_decays)) or DEFAULT_WEIGHT_DECAYS
    except ValueError:
        raise ConfigError(
            "weight_decays", f"expected numbers, got {','.join(f.weight_decays)}"
        ) from None
    if any(not 0 < w < math.inf for w in wds) or len(set(wds)) != len(wds):
        raise ConfigError("weight_decays", "must be distinct, > 0 and finite (log-spaced grid)")
    if f.tune != "lr" and len(wds) < 3:
        raise ConfigError("weight_decays", "a weight-decay grid needs at least three values")
    if f.tune == "lr" and f["weight_decays"].present:
        raise ConfigError("weight_decays", "a grid to tune; give --tune=weight_decay or both")
    if not (f.weight_decay == -1 or 0 <= f.weight_decay < math.inf):
        raise ConfigError("weight_decay", f"must be >= 0 (-1 = none), got {f.weight_decay}")
    mode, width = _decay_mode(f)
    try:
        corrections = tuple(corr.parse(c) for c in f.correction)
    except ValueError as e:
        raise ConfigError("correction", str(e)) from None
    if corrections and f.tune == "weight_decay":
        raise ConfigError("correction", "corrections act on the LR; --tune=weight_decay keeps it")
    return AxesRequest(
        axes=axes,
        points=tuple(points),
        tune=f.tune,
        weight_decays=wds,
        weight_decay=None if f.weight_decay == -1 else f.weight_decay,
        objective=f.objective,
        corrections=corrections,
        batch_keeps=f.batch_keeps,
        weight_decay_mode=mode,
        weight_decay_width=width,
    )


def _decay_mode(f) -> tuple[str, str]:
    """(--weight_decay_mode, --weight_decay_width resolved to the mode's own when ""),
    refused when unknown or when the run has no decay for them to act on."""
    mode, width = f.weight_decay_mode, f.weight_decay_width
    if mode not in WEIGHT_DECAY_MODES:
        raise ConfigError(
            "weight_decay_mode",
            f"unknown mode {mode!r}; choose one of: {', '.join(WEIGHT_DECAY_MODES)}",
        )
    choices = DECAY_WIDTH_SCALINGS[mode]
    if width and width not in choices:
        raise ConfigError(
            "weight_decay_width",
            f"{mode} decay scales with width as one of: {', '.join(choices)}; got {width!r}",
        )
    no_decay = f.tune == "lr" and f.weight_decay == -1
    if no_decay and (f["weight_decay_mode"].present or f["weight_decay_width"].present):
        flag = "weight_decay_mode" if f["weight_decay_mode"].present else "weight_decay_width"
        raise ConfigError(
            flag, "no weight decay to act on: give --tune=weight_decay or both, or --weight_decay"
        )
    return mode, decay_width(mode, width)
