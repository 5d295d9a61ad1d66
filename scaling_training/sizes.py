"""Will the model fit? A cheap lower bound on a run's memory, from its flags and input shape.

Counted from the shapes each zoo family builds (no arrays are made): parameters with their
gradient and optimizer state, plus the activations one step keeps for the backward pass.
The estimate leaves out XLA's temporaries, so it is a lower bound: a run refused here could
never fit, and one let through can still run out later (rarely, for huge models).
"""

from __future__ import annotations

import math
import os

BYTES = 4  # float32
TRANSFORMERS = ("lm", "vit")
CONV_MODELS = {"cnn1d": 1, "cnn2d": 2, "resnet": 2}  # model -> spatial dimensions of its kernel
# Copies of each parameter a step holds: the value, its gradient, the update, the
# optimizer's moments (two for Adam, one for momentum and Lion, none for SGD).
STATE_COPIES = {
    "sgd": 3,
    "momentum": 4,
    "lion": 4,
    "adam": 5,
    "adamw": 5,
    "muon": 5,
    "adafactor": 3,
}


def estimate(
    model: str,
    width: int,
    depth: int,
    batch_size: int,
    kernel_size: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    heads: int = 1,
    mlp_ratio: int = 1,
) -> tuple[int, int]:
    """(parameters, activation values of one step) of a zoo model; unknown families are
    counted as an MLP of the same width and depth (a lower bound for any dense model).
    `heads`, `mlp_ratio`: the transformers' (their defaults 1 keep the bound a lower one)."""
    inputs = math.prod(input_shape)
    if model in CONV_MODELS:
        dims = CONV_MODELS[model]
        volume = kernel_size**dims
        spatial = math.prod(input_shape[:dims])
        channels = math.prod(input_shape[dims:])  # 1 for inputs without a channel axis
        if model == "resnet":
            blocks = 2 * max((depth - 2) // 6, 1)  # convs per stage
            params = channels * volume * width + blocks * volume * 21 * width**2
            params += 4 * width * num_classes
            # stages of width, 2 width, 4 width channels at 1, 1/4, 1/16 of the positions
            per_example = 1.75 * spatial * width * blocks * (volume + 3)
        else:
            params = channels * volume * width + (depth - 1) * volume * width**2
            params += width * num_classes
            per_example = depth * spatial * width * (volume + 3)  # im2col patches, pre/post
    elif model in TRANSFORMERS:
        # Per block q, k, v, out (4 w^2) and the MLP (2 ratio w^2); tokens: the window of an
        # lm, at least one patch of a vit (the patch grid is not known here). The backward
        # pass keeps each block's attention weights, heads x tokens^2 per example (XLA's
        # attention on CPU materialises them; a fused GPU kernel keeps less).
        tokens = input_shape[0] if model == "lm" else 1
        embedding = num_classes * width if model == "lm" else inputs * width
        params = depth * (4 + 2 * mlp_ratio) * width**2 + embedding + width * num_classes
        per_token = (6 + 2 * mlp_ratio) * width + heads * tokens
        per_example = depth * tokens * per_token
    else:
        per_block = 2 * width**2 if model == "resmlp" else width**2
        blocks = depth if model == "resmlp" else depth - 1
        params = inputs * width + blocks * per_block + width * num_classes
        per_example = 4 * depth * width
    return int(params), int(per_example * batch_size)


def step_bytes(params: int, activations: int, members: int = 1, copies: int = 5) -> int:
    """Bytes of `members` models trained at once: `copies` of each parameter (STATE_COPIES)
    and the activations, twice (their values and their gradients)."""
    return members * BYTES * (copies * params + 2 * activations)


def available_bytes() -> tuple[int, str]:
    """Memory of one device (accelerators) or the host's available RAM (CPU), and its name."""
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except Exception:  # some backends do not report
            stats = {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"]), f"one {device.device_kind}"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "available RAM"
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages), "available RAM"


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**27 else f"{n / 2**20:,.1f} MiB"
