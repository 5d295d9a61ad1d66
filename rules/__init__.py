"""Scaling rules: parametrizations as composable functions of layer metadata.

Core (no JAX needed): `LayerMeta`, `Scales`, `Rule`, `compose`, the transforms,
the registry and every registered rule by its name (`sp`, `ntk`, `mup`, `mean_field`, ...).
Flax/optax adapters (`Linear`, `Conv`, `describe`, `parametrize` for models written
without `rules`, `optimizer`, `lr_multipliers`, `scale_by_tree`) are imported on first use
so that the core stays cheap to import; the `TYPE_CHECKING` block names them for editors
and type checkers (tests/test_rules_exports.py keeps it and `_LAZY` equal).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rules.algebra import Rule, Transform, compose, named
from rules.gains import GAINS, gain
from rules.library import (
    am_mup,
    am_mup_last,
    am_mup_network,
    completep,
    completep_alpha,
    depth_mup,
    mean_field,
    mup,
    mup_naive_spectral,
    ntk,
    residual_he,
    residual_he_last,
    sp,
)
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

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers; never run
    from rules.attention import attention_fn, attention_meta, dot_product_attention, logit_scale
    from rules.foreign import parametrize
    from rules.layouts import linen_layouts, nnx_layouts
    from rules.nnx_layers import Conv, Linear, bias_meta, param_metas, scaled_param, scales_of
    from rules.optim import lr_multipliers, optimizer, param_scales, scale_by_tree
    from rules.parametrization import Parametrization
    from rules.report import describe, layer_rows
    from rules.rescale import tied_readout_multiplier
    from rules.residual import branch_fields, residual_multiplier

# name -> module that defines it, imported on first access (these modules import jax/flax).
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
    "param_metas": "rules.nnx_layers",
    "scale_by_tree": "rules.optim",
    "optimizer": "rules.optim",
    "Parametrization": "rules.parametrization",
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


def __dir__() -> list[str]:  # so that completion in a REPL offers the lazy names too
    return sorted(set(globals()) | set(_LAZY))


# Static, so that editors and type checkers see the lazy names too; every registered rule
# is here (tests/test_rules_exports.py).
__all__ = [
    "Conv",
    "GAINS",
    "LayerMeta",
    "Linear",
    "OPTIMIZERS",
    "Parametrization",
    "Rule",
    "RuleError",
    "Scales",
    "Transform",
    "am_mup",
    "am_mup_last",
    "am_mup_network",
    "attention_fn",
    "attention_meta",
    "bias_meta",
    "branch_fields",
    "branch_lr",
    "branch_multiplier",
    "check",
    "completep",
    "completep_adam_eps",
    "completep_alpha",
    "compose",
    "depth_lr",
    "depth_mup",
    "describe",
    "dot_product_attention",
    "gain",
    "get",
    "global_depth_lr",
    "he_init",
    "import_rules",
    "layer_rows",
    "linen_layouts",
    "logit_scale",
    "lr_multipliers",
    "mean_field",
    "mean_field_readout_init",
    "mup",
    "mup_attention",
    "mup_lr",
    "mup_naive_spectral",
    "mup_readout_init",
    "named",
    "names",
    "nnx_layouts",
    "ntk",
    "ntk_weights",
    "optimizer",
    "param_metas",
    "param_scales",
    "parametrize",
    "register",
    "residual_he",
    "residual_he_init",
    "residual_he_last",
    "residual_multiplier",
    "scale_by_tree",
    "scaled_param",
    "scales_of",
    "sp",
    "tied_readout_multiplier",
]
