"""Scaling rules: parametrizations as composable functions of layer metadata.

Core (no JAX needed): `LayerMeta`, `Scales`, `Rule`, `compose`, the transforms,
the registry and the named rules `sp`, `ntk`, `mup`, `mean_field`.
Flax/optax adapters (`Linear`, `Conv`, `describe`, `parametrize` for models written
without `rules`, `optimizer`, `lr_multipliers`, `scale_by_tree`) are imported on first use
so that the core stays cheap to import.
"""

from __future__ import annotations

import importlib

from rules.algebra import Rule, Transform, compose, named
from rules.gains import GAINS, gain
from rules.library import am_mup, completep, completep_alpha, depth_mup, mean_field, mup, ntk, sp
from rules.meta import LayerMeta, Scales
from rules.optim_names import OPTIMIZERS
from rules.registry import get, import_rules, names, register
from rules.transforms import (
    branch_lr,
    branch_multiplier,
    completep_adam_eps,
    depth_lr,
    global_depth_lr,
    he_init,
    mean_field_readout_init,
    mup_attention,
    mup_lr,
    mup_readout_init,
    ntk_weights,
    residual_he_init,
)
from rules.validation import RuleError, check

_LAZY = {
    "attention_fn": "rules.attention",
    "attention_meta": "rules.attention",
    "dot_product_attention": "rules.attention",
    "logit_scale": "rules.attention",
    "Conv": "rules.nnx_layers",
    "Linear": "rules.nnx_layers",
    "bias_meta": "rules.nnx_layers",
    "scaled_param": "rules.nnx_layers",
    "scales_of": "rules.nnx_layers",
    "describe": "rules.report",
    "layer_rows": "rules.report",
    "lr_multipliers": "rules.optim",
    "param_scales": "rules.optim",
    "scaled_optimizer": "rules.optim",
    "param_metas": "rules.nnx_layers",
    "scale_by_tree": "rules.optim",
    "optimizer": "rules.optim",
    "Parametrization": "rules.foreign",
    "parametrize": "rules.foreign",
    "linen_layouts": "rules.layouts",
    "nnx_layouts": "rules.layouts",
    "branch_fields": "rules.residual",
    "residual_multiplier": "rules.residual",
    "tied_readout_multiplier": "rules.rescale",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rules' has no attribute {name!r}")


__all__ = [
    "GAINS",
    "OPTIMIZERS",
    "RuleError",
    "am_mup",
    "branch_lr",
    "branch_multiplier",
    "check",
    "completep",
    "completep_adam_eps",
    "completep_alpha",
    "depth_mup",
    "global_depth_lr",
    "import_rules",
    "residual_he_init",
    "LayerMeta",
    "Rule",
    "Scales",
    "Transform",
    "compose",
    "depth_lr",
    "gain",
    "get",
    "he_init",
    "mean_field",
    "mean_field_readout_init",
    "mup",
    "mup_attention",
    "mup_lr",
    "mup_readout_init",
    "named",
    "names",
    "ntk",
    "ntk_weights",
    "register",
    "sp",
    *_LAZY,
]
