"""Will a run fit in memory? `check_fits(config, ...)`: train.py's side of
scaling_training/sizes.py (which estimates sizes without knowing about flags; the probes'
side is scaling/checks.py's `check_fits`, on the same `estimate` and `step_bytes`)."""

from __future__ import annotations

from scaling_training.config import TrainConfig, model_default, sweep_lrs
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
    settings = {k: getattr(config, k) for k in names} | override
    if config.model == "lm":  # its input is one window of --seq_len tokens
        input_shape = (settings["seq_len"],)
    params, activations = estimate(
        config.model,
        settings["width"],
        settings["depth"],
        settings["batch_size"],
        config.kernel_size,
        tuple(input_shape),
        num_classes,
        heads=attention_heads(config),
        mlp_ratio=settings["mlp_ratio"],
    )
    members = len(sweep_lrs(config)) * config.seeds or 1
    return step_bytes(params, activations, members, STATE_COPIES.get(config.optimizer, 5))


def attention_heads(config: TrainConfig) -> int:
    """The transformers' heads: --heads, or width / --head_dim with a fixed head size."""
    return max(1, config.width // config.head_dim) if config.head_dim else config.heads


def check_fits(
    config: TrainConfig, input_shape, num_classes: int, available: tuple[int, str] | None = None
) -> None:
    """ConfigError naming the flag to lower when the run cannot fit in memory, and
    --kernel_size when the kernel is larger than the input."""
    spatial = tuple(input_shape[: CONV_MODELS.get(config.model, 0)])
    if spatial and config.kernel_size > min(spatial):
        raise ConfigError(
            "kernel_size",
            f"{config.kernel_size} is larger than the input ({'x'.join(map(str, spatial))}); "
            f"use at most {min(spatial)}",
        )
    need = needed_bytes(config, input_shape, num_classes)
    have, where = available or available_bytes()
    if need <= have:
        return
    defaults = {
        "width": model_default(config.model, "width"),
        "depth": model_default(config.model, "depth"),
        "batch_size": 128,
    }
    if config.model in TRANSFORMERS:
        defaults |= {"mlp_ratio": 4} | ({"seq_len": 64} if config.model == "lm" else {})
    saved = {
        flag: need - needed_bytes(config, input_shape, num_classes, **{flag: value})
        for flag, value in defaults.items()
        if value < getattr(config, flag)
    }
    flag = max(saved, key=saved.get) if saved else "width"
    raise ConfigError(
        flag,
        f"the run needs at least {gib(need)} (parameters, optimizer state and activations at "
        f"--{flag}={getattr(config, flag)}), more than the {gib(have)} of {where}; "
        f"lower --{flag}",
    )
