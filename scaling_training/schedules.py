"""Learning-rate schedules and gradient clipping around a rule's optimizer.

A schedule multiplies the *global* learning rate: the rule's optimizer ends with
`scale_by_learning_rate(lr)`, so scaling its whole update by a factor f(step) is the
same as training with lr x f(step), and every per-layer multiplier (LR, decay, Adam eps)
keeps its ratio to it. The peak lr stays the injected hyperparameter of the optimizer
state, so a sweep over peak lrs still compiles once. Clipping acts on the raw gradients,
before the rule's direction and multipliers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optax

# jax and optax are imported inside the functions: the flag validation (and so
# `train.py --help`) reads SCHEDULES and must not pay for importing jax.
SCHEDULES = ("constant", "cosine", "linear", "rsqrt")


def lr_factor(name: str, steps: int, warmup_steps: int = 0):
    """count -> factor of the peak lr for the update after `count` earlier updates.

    Warm-up rises linearly to 1 over `warmup_steps` updates ((count + 1) / warmup, so the
    first update is not wasted); after it: constant 1; cosine and linear decay to 0 at
    `steps`; rsqrt 1 / sqrt(1 + t / max(warmup, 1)), t the updates since the warm-up.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    import jax.numpy as jnp

    decay_steps = max(steps - warmup_steps, 1)

    def factor(count):
        count = jnp.asarray(count, jnp.float32)
        t = jnp.maximum(count - warmup_steps, 0.0)
        if name == "constant":
            after = jnp.ones_like(t)
        elif name == "cosine":
            after = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t / decay_steps, 1.0)))
        elif name == "linear":
            after = jnp.maximum(1 - t / decay_steps, 0.0)
        else:
            after = 1 / jnp.sqrt(1 + t / max(warmup_steps, 1))
        if warmup_steps <= 0:
            return after
        return jnp.where(count < warmup_steps, (count + 1) / warmup_steps, after)

    return factor


def with_schedule_and_clipping(
    optimizer: optax.GradientTransformation,
    schedule: str = "constant",
    steps: int = 1,
    warmup_steps: int = 0,
    clip_norm: float = 0.0,
) -> optax.GradientTransformation:
    """`optimizer` with global-norm clipping of the gradients before it (clip_norm > 0) and
    its update scaled by the schedule's factor after it. Unchanged for a constant lr
    without warm-up or clipping (the same optimizer state as before)."""
    import optax

    parts = []
    if clip_norm > 0:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(optimizer)
    if schedule != "constant" or warmup_steps > 0:
        parts.append(optax.scale_by_schedule(lr_factor(schedule, steps, warmup_steps)))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)
