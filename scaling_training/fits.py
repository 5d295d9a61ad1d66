"""Will a run fit in memory? `check_fits(config, ...)`: train.py's side of
scaling_training/sizes.py (which estimates sizes without knowing about flags; the probes'
side is scaling/checks.py's `check_fits`, on the same `estimate` and `step_bytes`)."""

from __future__ import annotations

from scaling_training.config import FLAG_DEFAULTS, TrainConfig, model_default, sweep_lrs
from scaling_training.errors import ConfigError
from scaling_training.sizes import (
    CONV_MODELS,
    STATE_COPIES,
    TRANSFORMERS,
    available_bytes,
    estimate,
    gib,
    step_bytes,
)


def needed_bytes(config: TrainConfig, input_shape, num_classes, **override) -> int:
    names = ("width", "depth", "batch_size", "mlp_ratio", "seq_len")
    settings = {k: config.flag(k) for k in names} | override
    if config.model.name == "lm":  # its input is one window of --seq_len tokens
        input_shape = (settings["seq_len"],)
    params, activations = estimate(
        config.model.name,
        settings["width"],
        settings["depth"],
        settings["batch_size"],
        config.model.kernel_size,
        tuple(input_shape),
        num_classes,
        heads=config.model.attention_shape()[0],
        mlp_ratio=settings["mlp_ratio"],
    )
    members = len(sweep_lrs(config)) * config.seeds or 1
    return step_bytes(params, activations, members, STATE_COPIES.get(config.optimizer, 5))


def check_fits(
    config: TrainConfig, input_shape, num_classes: int, available: tuple[int, str] | None = None
) -> None:
    """ConfigError naming the flag to lower when the run cannot fit in memory, and
    --kernel_size when the kernel is larger than the input."""
    kernel_size = config.model.kernel_size
    spatial = tuple(input_shape[: CONV_MODELS.get(config.model.name, 0)])
    if spatial and kernel_size > min(spatial):
        raise ConfigError(
            "kernel_size",
            f"{kernel_size} is larger than the input ({'x'.join(map(str, spatial))}); "
            f"use at most {min(spatial)}",
        )
    need = needed_bytes(config, input_shape, num_classes)
    have, where = available or available_bytes()
    if need <= have:
        return
    defaults = {
        "width": model_default(config.model.name, "width"),
        "depth": model_default(config.model.name, "depth"),
        "batch_size": 128,
    }
    if config.model.name in TRANSFORMERS:
        defaults["mlp_ratio"] = FLAG_DEFAULTS["mlp_ratio"]
        if config.model.name == "lm":
            defaults["seq_len"] = FLAG_DEFAULTS["seq_len"]
    saved = {
        flag: need - needed_bytes(config, input_shape, num_classes, **{flag: value})
        for flag, value in defaults.items()
        if value < config.flag(flag)
    }
    flag = max(saved, key=saved.get) if saved else "width"
    raise ConfigError(
        flag,
        f"the run needs at least {gib(need)} (parameters, optimizer state and activations at "
        f"--{flag}={config.flag(flag)}), more than the {gib(have)} of {where}; "
        f"lower --{flag}",
    )
