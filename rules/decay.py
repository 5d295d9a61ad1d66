"""The optimizer's side of the weight-decay modes and width scalings (rules/axes.py).

`scaled_optimizer` applies coupled decay, p -= lr (s.lr d + wd s.weight_decay p).
Independent decay is the same optimizer without decay, followed by p -= wd s.weight_decay p,
so a schedule applied after both (scaling_training/schedules.py) multiplies it by the
schedule's factor but never by the peak LR.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from flax import nnx

from rules.axes import decay_width_transform
from rules.meta import Scales
from rules.optim import _field, add_decayed_weights_tree, param_scales


def independent_decay(weight_decay: float, scales: Any) -> optax.GradientTransformation:
    """updates - weight_decay x s.weight_decay x params: decay per step not multiplied by
    the LR (chain it after an optimizer built with weight_decay=0)."""
    return add_decayed_weights_tree(-weight_decay, _field(scales, "weight_decay"))


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
