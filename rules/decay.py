"""Per-layer weight-decay scales for the decay modes and width scalings (rules/axes.py).

`rules.optimizer` applies coupled decay, p -= lr (s.lr d + wd s.weight_decay p), by default;
with weight_decay_mode="independent" it is the same optimizer without decay, followed by
p -= wd s.weight_decay p (`rules.optim.independent_decay`), so a schedule applied after both
(scaling_training/schedules.py) multiplies it by the schedule's factor but never by the peak
LR. `decay_scales` gives each layer's s.weight_decay under a width scaling.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from rules.axes import decay_width_transform
from rules.meta import Scales
from rules.optim import param_scales


def decay_scales(model: nnx.Module, mode: str = "coupled", scaling: str = "completep") -> Any:
    """`rules.param_scales(model)` with the weight-decay width scaling `scaling` of `mode`
    applied per parameter (rules.axes.decay_width_transform); the model's own scales when
    that scaling needs no transform. Parameters without metadata keep their scales."""
    transform = decay_width_transform(mode, scaling)
    scales = param_scales(model)
    if transform is None:
        return scales
    state = nnx.state(model, nnx.Param)
    metas = nnx.to_pure_dict(
        jax.tree.map(
            lambda v: v.get_metadata().get("meta"),
            state,
            is_leaf=lambda x: isinstance(x, nnx.Variable),
        )
    )

    def one(meta, scale: Scales) -> Scales:
        return scale if meta is None else transform(meta, scale)

    return jax.tree.map(one, metas, scales, is_leaf=lambda x: isinstance(x, Scales) or x is None)
