"""Rules for a run's other axes: training length, batch size and weight decay.

Width and depth rules act per layer (`rules.transforms`). Training length and batch size
are properties of the whole run: their corrections are one factor on a *global*
hyperparameter, so they have their own small algebra of the same shape:

- `RunShape`: what a run rule sees (steps and batch size beside the base run's, where the
  global hyperparameters were tuned; the optimizer family; the weight-decay mode);
- `RunScales`: what it decides (multipliers on the global LR and weight decay, and the
  exponent of Adam's beta2);
- a run transform `(RunShape, RunScales) -> RunScales`; `RunRule` chains them left to right
  and `RunRule.derive` says what each one did (`train.py --transfer_from` prints it).

A run without a base (`base_steps` / `base_batch_size` None, or equal to the run's own) has
multipliers exactly 1 under every transform here, so a rule that ignores these axes gives
bit-identical results. Per-layer width scalings of the weight decay (`decay_follows_lr`,
`inverse_width_decay`) are ordinary `(LayerMeta, Scales)` transforms, also here.

Weight-decay modes (the optimizer's side: `rules.decay`); `lr` is the global LR with its
schedule, `s` a parameter's `Scales`:
  coupled      decay per step lr x wd x s.weight_decay  (AdamW as optax.adamw applies it)
  independent  decay per step wd x s.weight_decay x schedule(t) / schedule peak
               (not multiplied by the LR: Loshchilov & Hutter's eta_t, Wortsman et al. 2023)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

from rules.algebra import named, transform_name
from rules.meta import LayerMeta, Scales

WeightDecayMode = Literal["coupled", "independent"]
WEIGHT_DECAY_MODES: tuple[str, ...] = ("coupled", "independent")
# Per-layer width scaling of the weight decay in each mode; the first is the library's own
# (decay per step the same at every width) and needs no transform.
DECAY_WIDTH_SCALINGS: dict[str, tuple[str, ...]] = {
    "coupled": ("completep", "constant"),
    "independent": ("constant", "inverse_width"),
}


# Batch-size LR exponent per optimizer family (below the critical batch).
BATCH_LR_POWERS: dict[str, float] = {"sgd": 1.0, "adam": 0.5}
BETA2_BOUNDS = (0.95, 0.9999)  # marin #4567's clip of the batch-scaled beta2


def decay_width(mode: str, scaling: str = "") -> str:
    """The weight-decay width scaling `scaling` of `mode`, "" meaning the mode's own."""
    return scaling or DECAY_WIDTH_SCALINGS[mode][0]


@dataclasses.dataclass(frozen=True)
class RunShape:
    """What a run-level rule sees. `base_*` None: the same as the run's own (no scaling)."""

    steps: int
    batch_size: int
    base_steps: int | None = None
    base_batch_size: int | None = None
    optimizer: str = "adam"  # the optimizer family (rules.optim_names.OPTIMIZERS' values)
    weight_decay_mode: WeightDecayMode = "coupled"

    def __post_init__(self):
        for name in ("steps", "batch_size", "base_steps", "base_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"weight_decay_mode must be one of {', '.join(WEIGHT_DECAY_MODES)}, "
                f"got {self.weight_decay_mode!r}"
            )

    @property
    def steps_multiplier(self) -> float:
        """S / S0: how many times longer the run is than the base run."""
        return self.steps / self.base_steps if self.base_steps else 1.0

    @property
    def batch_multiplier(self) -> float:
        """B / B0: how many times larger the batch is than the base run's."""
        return self.batch_size / self.base_batch_size if self.base_batch_size else 1.0


@dataclasses.dataclass(frozen=True)
class RunScales:
    """What a run-level rule decides, relative to the base run's global hyperparameters.

    lr, weight_decay: multipliers on the global LR and weight decay.
    beta2_power: Adam's beta2 becomes beta2_0 ** beta2_power, then clipped to
      `beta2_bounds` widened to include beta2_0 (so a power of 1 never moves it).
    """

    lr: float = 1.0
    weight_decay: float = 1.0
    beta2_power: float = 1.0
    beta2_bounds: tuple[float, float] = (0.0, 1.0)

    def replace(self, **changes) -> RunScales:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Global hyperparameters of a run: the base run's (tuned) or a target's (derived)."""

    lr: float
    weight_decay: float = 0.0
    beta2: float = 0.999


RunTransform = Callable[[RunShape, RunScales], RunScales]


def resolve(scales: RunScales, base: Hyper) -> Hyper:
    """The target's hyperparameters: `base` times `scales` (exactly `base` for neutral ones)."""
    beta2 = base.beta2
    if scales.beta2_power != 1.0:
        low, high = scales.beta2_bounds
        beta2 = min(
            max(base.beta2**scales.beta2_power, min(low, base.beta2)), max(high, base.beta2)
        )
    lr = base.lr if scales.lr == 1.0 else base.lr * scales.lr
    decay = (
        base.weight_decay if scales.weight_decay == 1.0 else base.weight_decay * scales.weight_decay
    )
    return Hyper(lr=lr, weight_decay=decay, beta2=beta2)


# -- run transforms -------------------------------------------------------------------------


def horizon_lr(beta: float) -> RunTransform:
    """Global LR x (S / S0)^-beta: the optimal LR falls as a power of the training length.

    Bjorck et al. 2024 fit LR*(N, D) = C N^-alpha D^-beta across token horizons D (beta ~
    0.3 in several reports; HyperP, arXiv 2603.28743, 0.32 for a norm-constrained Muon); at
    a fixed batch D is proportional to the steps S.
    """

    @named(f"horizon_lr({beta:g})")
    def transform(shape: RunShape, scales: RunScales) -> RunScales:
        if shape.steps_multiplier == 1.0:
            return scales
        return scales.replace(lr=scales.lr * shape.steps_multiplier**-beta)

    return transform


def batch_lr(power: float) -> RunTransform:
    """Global LR x (B / B0)^power, below the critical batch (McCandlish et al. 2018).

    power 1/2 for Adam (square-root scaling from the SDE view, Malladi et al. 2022), 1 for
    SGD (linear scaling, Goyal et al. 2017).
    """

    @named(f"batch_lr({power:g})")
    def transform(shape: RunShape, scales: RunScales) -> RunScales:
        if shape.batch_multiplier == 1.0:
            return scales
        return scales.replace(lr=scales.lr * shape.batch_multiplier**power)

    return transform


def batch_lr_by_family(shape: RunShape, scales: RunScales) -> RunScales:
    """`batch_lr` with the optimizer family's power: adam 1/2, sgd 1 (BATCH_LR_POWERS)."""
    if shape.optimizer not in BATCH_LR_POWERS:
        raise ValueError(
            f"no batch-size LR scaling is known for the {shape.optimizer!r} family; "
            "use batch_lr(power) with a measured power"
        )
    return batch_lr(BATCH_LR_POWERS[shape.optimizer])(shape, scales)


def beta2_half_life(low: float = BETA2_BOUNDS[0], high: float = BETA2_BOUNDS[1]) -> RunTransform:
    """Adam's beta2 -> beta2^(B / B0), clipped to [low, high]: the second moment then averages
    over the same number of *examples* (tokens) at every batch size, since its half-life of
    ln(1/2) / ln(beta2) steps sees B examples a step. marin #4567 uses clip(0.999^(B/32),
    0.95, 0.9999). The bounds are widened to include the base beta2 (see `RunScales`).
    """

    @named(f"beta2_half_life({low:g},{high:g})")
    def transform(shape: RunShape, scales: RunScales) -> RunScales:
        if shape.batch_multiplier == 1.0:
            return scales
        power = scales.beta2_power * shape.batch_multiplier
        return scales.replace(beta2_power=power, beta2_bounds=(low, high))

    return transform


def decay_timescale(power: float = 0.0) -> RunTransform:
    """Weight decay that keeps the AdamW timescale a fixed fraction of training.

    Power Lines (Bergsma et al. 2025): tau = B / (eta lambda D) = 1 / (eta lambda S) with
    D = S B tokens; Wang & Aitchison (2024) keep tau fixed in epochs. Coupled decay (per
    step eta lambda): lambda x (S0 / S) / (the LR factor of the transforms before this one,
    so put it last); independent decay (per step lambda): lambda x (S0 / S). `power` lets a
    measured trend of the optimal tau in tokens in: tau x (D / D0)^power (Power Lines fit
    tau* as a power law in tokens per parameter; 0 keeps tau fixed).
    """

    @named(f"decay_timescale({power:g})")
    def transform(shape: RunShape, scales: RunScales) -> RunScales:
        tokens = shape.steps_multiplier * shape.batch_multiplier
        factor = 1.0 / shape.steps_multiplier
        if power:
            factor *= tokens**-power
        if shape.weight_decay_mode == "coupled":
            factor /= scales.lr
        if factor == 1.0:
            return scales
        return scales.replace(weight_decay=scales.weight_decay * factor)

    return transform


@dataclasses.dataclass(frozen=True)
class Step:
    """One transform's effect in a derivation: the scales before and after it."""

    name: str
    before: RunScales
    after: RunScales

    @property
    def lr_factor(self) -> float:
        return self.after.lr / self.before.lr

    @property
    def weight_decay_factor(self) -> float:
        return self.after.weight_decay / self.before.weight_decay


@dataclasses.dataclass(frozen=True)
class RunRule:
    """Run transforms applied in order to the neutral `RunScales()`."""

    name: str
    transforms: tuple[RunTransform, ...] = ()

    def __call__(self, shape: RunShape, scales: RunScales | None = None) -> RunScales:
        scales = RunScales() if scales is None else scales
        for transform in self.transforms:
            scales = transform(shape, scales)
        return scales

    def derive(self, shape: RunShape) -> list[Step]:
        """What each transform did, in order (for a printed derivation)."""
        steps, scales = [], RunScales()
        for transform in self.transforms:
            after = transform(shape, scales)
            steps.append(Step(transform_name(transform), scales, after))
            scales = after
        return steps

    @property
    def pipeline(self) -> str:
        return " > ".join(transform_name(t) for t in self.transforms) or "(none)"


def compose_run(*parts: RunRule | RunTransform, name: str | None = None) -> RunRule:
    """Chain run rules and run transforms left to right into one `RunRule`."""
    transforms: list[RunTransform] = []
    for part in parts:
        transforms.extend(part.transforms if isinstance(part, RunRule) else (part,))
    if name is None:
        name = "+".join(p.name if isinstance(p, RunRule) else transform_name(p) for p in parts)
    return RunRule(name or "none", tuple(transforms))


# -- per-layer width scaling of the weight decay (LayerMeta transforms) ----------------------


def decay_follows_lr(meta: LayerMeta, scales: Scales) -> Scales:
    """Coupled decay with a constant per-layer lambda: each layer's AdamW LR multiplies it
    (torch AdamW over param groups, microsoft/mup's MuAdamW), decay per step lr x s.lr x
    lambda. Under muP's Adam LRs the hidden and readout decay per step then shrinks as 1/n.
    Compose it after the LR transforms (it reads `scales.lr`)."""
    del meta
    return scales.replace(weight_decay=scales.weight_decay * scales.lr)


def inverse_width_decay(meta: LayerMeta, scales: Scales) -> Scales:
    """Independent decay x 1/n on weights whose fan-in grows (hidden, readout): Qiu et al.
    2025 (arXiv 2512.05620) find independent weight decay ~ 1/width near-optimal for AdamW,
    Shampoo, SOAP and Muon; with muP's Adam LRs it is decay per step ~ the layer's LR."""
    if meta.is_weight:
        return scales.replace(weight_decay=scales.weight_decay / meta.fan_in_multiplier)
    return scales


_DECAY_WIDTH_TRANSFORMS = {
    ("coupled", "constant"): decay_follows_lr,
    ("independent", "inverse_width"): inverse_width_decay,
}


def decay_width_transform(mode: str, scaling: str):
    """The per-layer transform of weight-decay width scaling `scaling` in `mode`, or None
    where the library's own decay already does it (decay per step the same at every width:
    coupled "completep", i.e. CompleteP's lambda x n against an Adam LR / n, since our
    coupled decay is not multiplied by the LR multiplier; independent "constant")."""
    if mode not in DECAY_WIDTH_SCALINGS:
        raise ValueError(f"unknown weight-decay mode {mode!r}; choose one of: {WEIGHT_DECAY_MODES}")
    if scaling not in DECAY_WIDTH_SCALINGS[mode]:
        choices = ", ".join(DECAY_WIDTH_SCALINGS[mode])
        raise ValueError(
            f"{mode} weight decay scales with width as one of {choices}, got {scaling!r}"
        )
    return _DECAY_WIDTH_TRANSFORMS.get((mode, scaling))
