"""The run-axes flags of train.py (training length, batch size, weight decay): their help,
their checks, and the run rule (rules/axes.py) they select.

`--lr` and `--weight_decay` are the base run's values, as `--lr` is the base width's: a run
with `--base_steps` / `--base_batch_size` and a correction trains at the derived values,
printed by `describe`. With every flag at its default the optimizer is built exactly as
before (same chain, same numbers).

Imports stay light (no jax): train.py reads HELP and validation runs before JAX starts.
"""

from __future__ import annotations

import math

from rules import axes
from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY
from scaling_training.errors import ConfigError

BATCH_LR_SCALINGS = {"none": None, "sqrt": 0.5, "linear": 1.0, "family": "family"}
ADAM_NAMES = ("adam", "adamw")  # the optimizers --beta2 and --batch_beta2 act on

HELP = {
    "base_steps": "steps of the base run, where --lr and --weight_decay were tuned; 0 = --steps",
    "base_batch_size": "batch size of the base run, where --lr was tuned; 0 = --batch_size",
    "horizon_beta": "lr x (steps / base_steps)^-beta (Bjorck et al. 2024: beta ~ 0.3); "
    "0 = off; needs --base_steps",
    "batch_lr_scaling": "lr x (batch_size / base_batch_size)^p: none, sqrt (Adam, p = 1/2), "
    "linear (SGD, p = 1), family (sqrt for adam, adamw, lion; linear for sgd, momentum); "
    "needs --base_batch_size",
    "batch_beta2": "Adam's beta2 -> clip(beta2^(batch_size / base_batch_size), 0.95, 0.9999): "
    "the same half-life in examples (marin); needs --base_batch_size and adam or adamw",
    "decay_timescale": "weight decay that keeps lr x wd x steps (coupled) or wd x steps "
    "(independent) fixed: the AdamW timescale as a fraction of training (Power Lines); needs "
    "--base_steps or --base_batch_size",
    "weight_decay_mode": "coupled (decay per step lr x wd, as AdamW / optax.adamw) or "
    "independent (per step wd times the schedule's factor, not the peak lr)",
    "weight_decay_width": "per-layer weight decay across width; coupled: completep (default: "
    "decay per step the same at every width; CompleteP's wd x n for an LR / n) or constant "
    "(wd times each layer's LR multiplier, as torch AdamW param groups); independent: "
    "constant (default) or inverse_width (wd / n on hidden and readout weights, Qiu et al.)",
    "beta2": "Adam's second-moment decay (adam, adamw)",
    "transfer_from": "a tuned proxy: a sweep's workdir (config.json + sweep.json) or a JSON of "
    "tuned values; the run takes its lr and weight decay with the factors of every axis that "
    "differs, and its other settings unless given",
}


def weight_decay_width(config) -> str:
    """--weight_decay_width, "" resolved to the mode's own scaling."""
    return axes.decay_width(config.weight_decay_mode, config.weight_decay_width)


def validate_axes(config) -> None:
    """Every run-axes flag and their combinations (config has per-model defaults filled in)."""
    _choose("weight_decay_mode", config.weight_decay_mode, axes.WEIGHT_DECAY_MODES)
    if config.weight_decay_width:
        choices = axes.DECAY_WIDTH_SCALINGS[config.weight_decay_mode]
        if config.weight_decay_width not in choices:
            raise ConfigError(
                "weight_decay_width",
                f"{config.weight_decay_mode} decay takes one of: {', '.join(choices)}; got "
                f"{config.weight_decay_width!r}",
            )
    default_decay = config.weight_decay is None and config.weight_decay_value > 0
    if config.weight_decay_mode == "independent" and default_decay:
        raise ConfigError(
            "weight_decay_mode",
            "independent decay is per step (not x lr): give --weight_decay explicitly "
            f"(the default {config.weight_decay_value:g} is a coupled one)",
        )
    _choose("batch_lr_scaling", config.batch_lr_scaling, tuple(BATCH_LR_SCALINGS))
    if config.transfer_from and not config.base_steps:  # resolve() always sets base_steps
        raise ConfigError(
            "transfer_from",
            "not resolved: pass the config through scaling_training.transfer.resolve",
        )
    for flag in ("base_steps", "base_batch_size"):
        if getattr(config, flag) < 0:
            raise ConfigError(flag, f"must be >= 0 (0: the run's own), got {getattr(config, flag)}")
    if not math.isfinite(config.horizon_beta):
        raise ConfigError("horizon_beta", f"must be finite, got {config.horizon_beta}")
    if not 0 < config.beta2 < 1:
        raise ConfigError("beta2", f"must be in (0, 1), got {config.beta2}")
    adam = config.optimizer in ADAM_NAMES
    if config.beta2 != 0.999 and not adam:
        raise ConfigError("beta2", f"acts on adam and adamw only, not {config.optimizer}")
    if config.horizon_beta and not config.base_steps:
        raise ConfigError("horizon_beta", "needs --base_steps (where the LR was tuned)")
    for flag in ("batch_lr_scaling", "batch_beta2"):
        if getattr(config, flag) not in ("none", False) and not config.base_batch_size:
            raise ConfigError(flag, "needs --base_batch_size (where the LR was tuned)")
    if config.batch_beta2 and not adam:
        raise ConfigError("batch_beta2", f"acts on Adam's beta2; {config.optimizer} has none")
    family = OPTIMIZER_FAMILY.get(config.optimizer)
    if config.batch_lr_scaling == "family" and family not in axes.BATCH_LR_POWERS:
        raise ConfigError(
            "batch_lr_scaling",
            f"no batch-size LR scaling is known for the {family!r} family; use sqrt or linear",
        )
    if config.decay_timescale:
        if not (config.base_steps or config.base_batch_size):
            raise ConfigError("decay_timescale", "needs --base_steps or --base_batch_size")
        if config.weight_decay_value == 0:
            raise ConfigError("decay_timescale", "there is no weight decay (--weight_decay=0)")
    _check_derived(config)


def _check_derived(config) -> None:
    """The derived multipliers must be positive and finite (a huge --horizon_beta overflows
    or rounds the LR to 0): refused here, before the run trains at a useless LR."""
    try:
        scales = run_scales(config)
    except OverflowError:
        scales = None
    flag = "horizon_beta" if config.horizon_beta else "batch_lr_scaling"
    for name in ("lr", "weight_decay"):
        value = None if scales is None else getattr(scales, name)
        if value is None or not 1e-30 < value < 1e30:
            raise ConfigError(
                flag,
                f"the derived {name} factor is {value if value is not None else 'out of range'}"
                " (must be within 1e-30..1e30); use a smaller exponent",
            )


def _choose(flag: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(flag, f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")


def run_shape(config) -> axes.RunShape:
    return axes.RunShape(
        steps=config.steps,
        batch_size=config.batch_size,
        base_steps=config.base_steps or None,
        base_batch_size=config.base_batch_size or None,
        optimizer=OPTIMIZER_FAMILY.get(config.optimizer, config.optimizer),
        weight_decay_mode=config.weight_decay_mode,
    )


def run_rule(config) -> axes.RunRule:
    """The corrections the flags select, in the order the decay timescale needs (LR first)."""
    parts = []
    if config.horizon_beta:
        parts.append(axes.horizon_lr(config.horizon_beta))
    power = BATCH_LR_SCALINGS[config.batch_lr_scaling]
    if power == "family":
        parts.append(axes.batch_lr_by_family)
    elif power is not None:
        parts.append(axes.batch_lr(power))
    if config.batch_beta2:
        parts.append(axes.beta2_half_life())
    if config.decay_timescale:
        parts.append(axes.decay_timescale())
    return axes.compose_run(*parts)


def base_hyper(config, lr: float | None = None) -> axes.Hyper:
    return axes.Hyper(
        lr=config.lr if lr is None else lr,
        weight_decay=config.weight_decay_value,
        beta2=config.beta2,
    )


def run_scales(config) -> axes.RunScales:
    return run_rule(config)(run_shape(config))


def optimizer_arguments(config, model) -> tuple[object, float, dict]:
    """(scales, weight decay, options) for rules.optimizer: the model's scales with the decay
    width scaling applied, the derived weight decay, and the run-axes options ({} and the
    model's own scales and --weight_decay for default flags: the optimizer as before)."""
    from rules.decay import decay_scales

    scales = run_scales(config)
    hyper = axes.resolve(scales, base_hyper(config))
    options = {}
    if scales.lr != 1.0:
        options["lr_factor"] = scales.lr
    if hyper.beta2 != 0.999:
        options["b2"] = hyper.beta2
    if config.weight_decay_mode != "coupled":
        options["weight_decay_mode"] = config.weight_decay_mode
    tree = decay_scales(model, config.weight_decay_mode, weight_decay_width(config))
    return tree, hyper.weight_decay, options


def describe(config) -> list[str]:
    """The derivation of the run's lr, weight decay and beta2 from the base run's, one line
    per axis; [] when nothing differs from a plain run."""
    shape = run_shape(config)
    rule = run_rule(config)
    scaling = weight_decay_width(config)
    plain = (
        not rule.transforms
        and config.weight_decay_mode == "coupled"
        and scaling == "completep"
        and not config.transfer_from
    )
    if plain:
        return []
    steps = rule.derive(shape)
    lines = []
    for axis, size, base, names in (
        ("steps", config.steps, config.base_steps, ("horizon_lr",)),
        ("batch", config.batch_size, config.base_batch_size, ("batch_lr", "beta2_half_life")),
    ):
        lines.append(_axis_line(axis, size, base or size, steps, names, config.beta2))
    mode = config.weight_decay_mode
    decay = [s for s in steps if s.name.startswith("decay_timescale")]
    change = (
        f"{decay[0].name}: wd x {decay[0].weight_decay_factor:.4g}" if decay else "no correction"
    )
    lines.append(f"  weight decay: {mode}, width scaling {scaling}; {change}")
    base = base_hyper(config)
    target = axes.resolve(rule(shape), base)
    if config.lrs.strip():  # a sweep: --lrs are the base run's
        lr_text = f"every --lrs value x {rule(shape).lr:.4g}"
    else:
        lr_text = f"lr {base.lr:.4g} -> {target.lr:.4g}"
    beta2_text = (
        f", beta2 {base.beta2:g} -> {target.beta2:.6g}" if target.beta2 != base.beta2 else ""
    )
    lines.append(
        f"  => {lr_text}, weight decay {base.weight_decay:.4g} -> {target.weight_decay:.4g}"
        + beta2_text
    )
    return lines


def _axis_line(axis: str, size: int, base: int, steps, prefixes, beta2: float) -> str:
    text = f"  {axis} {base} -> {size}"
    if size == base:
        return text + ": same"
    text += f" (x{size / base:.4g}):"
    used = [s for s in steps if s.name.startswith(prefixes)]
    if not used:
        return text + " no correction (lr x 1)"
    parts = []
    for step in used:
        if step.after.lr != step.before.lr:
            parts.append(f"{step.name}: lr x {step.lr_factor:.4g}")
        elif step.after.beta2_power != step.before.beta2_power:
            after = axes.resolve(step.after, axes.Hyper(lr=1.0, beta2=beta2)).beta2
            parts.append(f"{step.name}: beta2 {beta2:g} -> {after:.6g}")
    return text + " " + "; ".join(parts)
