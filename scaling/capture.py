"""Pre-activations of every rules layer as a pure function of the parameters."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from training.engine import split_model


def recording(model: nnx.Module) -> nnx.Module:
    """A copy of `model` whose rules layers sow their pre-activations."""
    copy = nnx.clone(model)
    for _, module in nnx.iter_modules(copy):
        if hasattr(module, "record"):
            module.record = True
    return copy


def layer_name(path: tuple) -> str:
    return "/".join(str(p) for p in path if p != "preactivation")


def make_preactivations(model: nnx.Module):
    """(apply, params, rest): apply(params, x) -> (output, {layer path: pre-activation})."""
    graphdef, params, rest = split_model(recording(model))

    def apply(params: Any, x: jax.Array):
        module = nnx.merge(graphdef, params, rest)
        out, sown = nnx.capture(module, nnx.Intermediate)(x)
        return out, {layer_name(p): v.get_value()[0] for p, v in nnx.to_flat_state(sown)}

    return apply, params, rest
