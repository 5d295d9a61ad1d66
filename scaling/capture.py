"""Pre-activations of every rules layer as a pure function of the parameters.

Models written with flax's own layers (the README recipe, `rules.parametrize`) have no
rules layers to sow: for them the outputs of every parameter layer (a module holding a
`kernel` or an `embedding`: nnx.Linear, LinearGeneral, Einsum, Conv, ConvTranspose, Embed)
are captured with `nnx.capture(method_outputs=...)` instead, named by their module path.

A stack of identical blocks (`zoo.stack`) holds its layers' parameters on a leading axis,
and its sown pre-activations come back stacked the same way: such an entry is split into
one entry per layer, `hidden/conv` of 3 blocks into `hidden/conv/0`, `/1`, `/2`, so every
criterion (a max or mean over layers) counts layers, not stacks.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from scaling_training.engine import split_model


def recording(model: nnx.Module) -> nnx.Module:
    """A copy of `model` whose rules layers sow their pre-activations."""
    copy = nnx.clone(model)
    for _, module in nnx.iter_modules(copy):
        if hasattr(module, "record"):
            module.record = True
    return copy


def layer_name(path: tuple) -> str:
    return "/".join(str(p) for p in path if p != "preactivation")


def stacked_axes(model: nnx.Module) -> dict[str, int]:
    """{layer name: number of leading stacked axes} for every rules layer inside a stack.

    A rules layer's kernel has 2 dimensions (Linear) or kernel dims + 2 (Conv); a stack
    adds its axes in front of them.
    """
    axes = {}
    for path, module in nnx.iter_modules(model):
        if not hasattr(module, "record") or getattr(module, "kernel", None) is None:
            continue
        own = len(getattr(module, "kernel_size", ())) + 2
        extra = module.kernel.ndim - own
        if extra > 0:
            axes[layer_name(path)] = extra
    return axes


def split_stacks(values: dict[str, jax.Array], axes: dict[str, int]) -> dict[str, jax.Array]:
    """Entries with stacked axes become one entry per layer, `name/i` (row-major index)."""
    out = {}
    for name, value in values.items():
        count = axes.get(name, 0)
        if not count:
            out[name] = value
            continue
        layers = value.reshape(-1, *value.shape[count:])
        for i in range(layers.shape[0]):
            out[f"{name}/{i}"] = layers[i]
    return out


def has_rules_layers(model: nnx.Module) -> bool:
    return any(hasattr(module, "record") for _, module in nnx.iter_modules(model))


def parameter_layers(model: nnx.Module) -> set[str]:
    """Paths of the modules that hold a kernel or an embedding table (flax's own layers)."""
    names = set()
    for path, module in nnx.iter_modules(model):
        for attribute in ("kernel", "embedding"):
            if isinstance(getattr(module, attribute, None), nnx.Param):
                names.add(layer_name(path))
    return names


def make_layer_outputs(model: nnx.Module):
    """(apply, params, rest) for a model without rules layers: every parameter layer's
    output (its `__call__`) as its pre-activation."""
    graphdef, params, rest = split_model(model)
    layers = parameter_layers(model)

    def apply(params: Any, x: jax.Array):
        module = nnx.merge(graphdef, params, rest)
        out, outputs = nnx.capture(module, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
        values = {}
        for path, value in nnx.to_flat_state(outputs):
            name = layer_name(path[:-1])
            if path[-1] == "__call__" and name in layers:
                values[name] = value.get_value()[0]
        return out, values

    return apply, params, rest


def make_preactivations(model: nnx.Module):
    """(apply, params, rest): apply(params, x) -> (output, {layer: pre-activation}), with
    stacked layers split into one entry each."""
    if not has_rules_layers(model):
        return make_layer_outputs(model)
    graphdef, params, rest = split_model(recording(model))
    axes = stacked_axes(model)

    def apply(params: Any, x: jax.Array):
        module = nnx.merge(graphdef, params, rest)
        out, sown = nnx.capture(module, nnx.Intermediate)(x)
        values = {layer_name(p): v.get_value()[0] for p, v in nnx.to_flat_state(sown)}
        return out, split_stacks(values, axes)

    return apply, params, rest
