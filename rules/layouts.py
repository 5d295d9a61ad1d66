"""Which axes of a kernel are its inputs (fan_in), read off the Flax modules that own it.

Shapes alone cannot split a kernel of rank 3 or more into input and output axes: an
attention query `(d_model, heads, head_dim)` (DenseGeneral, input axis 0) and an attention
output `(heads, head_dim, d_model)` (input axes 0 and 1) look alike once heads or head_dim
grow. The module that made the kernel knows. A layout maps a kernel's path ('a/b/kernel')
to (input axes, output axes), counted from the end (negative) so that leading axes added by
stacking layers (`nnx.vmap`, `nn.scan`) belong to neither. An embedding table has no input
axis (a lookup reads one row).

- NNX: `nnx_layouts(model)` reads the modules of the model (abstract models work).
- Linen: `linen_layouts(module, *args)` traces `module.init(key, *args)` abstractly and
  records each Dense/DenseGeneral/Einsum/Conv/Embed call.
"""

from __future__ import annotations

import math
from typing import Any

import jax

Layout = tuple[tuple[int, ...], tuple[int, ...]]
Layouts = dict[str, Layout]


def _from_end(n_in: int, n_out: int) -> Layout:
    """n_in input axes followed by n_out output axes at the end of the kernel."""
    return tuple(range(-(n_in + n_out), -n_out)), tuple(range(-n_out, 0))


EMBEDDING: Layout = ((), (-1,))


def einsum_layout(equation: str, kernel_rank: int, lhs_rank: int | None = None):
    """(input axes, output axes) of the kernel, the second operand of `equation`: letters
    contracted with the input, and letters only in the result ('btd,dhk->bthk': (-3,),
    (-2, -1)); a letter in both (per-head weights) is in neither. None when an ellipsis in
    the kernel's subscripts cannot be expanded."""
    operands, _, result = equation.replace(" ", "").partition("->")
    lhs, _, rhs = operands.partition(",")
    if "..." in rhs:
        return None
    if "..." in lhs and lhs_rank is not None:
        lhs = lhs.replace("...", "#" * (lhs_rank - len(lhs.replace("...", ""))))
    if len(rhs) != kernel_rank:
        return None
    inputs = tuple(i - len(rhs) for i, c in enumerate(rhs) if c in lhs and c not in result)
    outputs = tuple(i - len(rhs) for i, c in enumerate(rhs) if c in result and c not in lhs)
    return inputs, outputs


def _join(*parts) -> str:
    return "/".join(str(p) for p in parts)


def nnx_layouts(model: Any) -> Layouts:
    """Input axes of every kernel made by flax.nnx Linear, LinearGeneral, Einsum, Conv,
    ConvTranspose and Embed in `model` (other modules are left to the shape rules)."""
    from flax import nnx

    layouts: Layouts = {}
    for path, module in nnx.iter_modules(model):
        prefix = _join(*path)
        kernel = f"{prefix}/kernel" if prefix else "kernel"
        if isinstance(module, nnx.Linear):
            layouts[kernel] = _from_end(1, 1)
        elif isinstance(module, (nnx.Conv, nnx.ConvTranspose)):
            layouts[kernel] = _from_end(len(_tuple(module.kernel_size)) + 1, 1)
        elif isinstance(module, nnx.LinearGeneral):
            layouts[kernel] = _from_end(len(module.in_features), len(module.out_features))
        elif isinstance(module, nnx.Einsum):
            layout = einsum_layout(module.einsum_str, len(module.kernel_shape))
            if layout is not None:
                layouts[kernel] = layout
        elif isinstance(module, nnx.Embed):
            layouts[f"{prefix}/embedding" if prefix else "embedding"] = EMBEDDING
    return layouts


def linen_layouts(module: Any, *args: Any, **kwargs: Any) -> Layouts:
    """Input axes of every kernel made by flax.linen Dense, DenseGeneral, Einsum, Conv,
    ConvTranspose and Embed while `module.init(key, *args, **kwargs)` runs (abstractly)."""
    import flax.linen as nn

    layouts: Layouts = {}

    def record(next_fun, call_args, call_kwargs, context):
        layer, name = context.module, context.method_name
        if name == "__call__" and layer.scope is not None:
            prefix = _join(*layer.scope.path)
            kernel = f"{prefix}/kernel"
            if isinstance(layer, nn.Dense):
                layouts[kernel] = _from_end(1, 1)
            elif isinstance(layer, (nn.Conv, nn.ConvTranspose)):
                layouts[kernel] = _from_end(len(_tuple(layer.kernel_size)) + 1, 1)
            elif isinstance(layer, nn.DenseGeneral):
                layouts[kernel] = _from_end(len(_tuple(layer.axis)), len(_tuple(layer.features)))
            elif isinstance(layer, nn.Einsum):
                lhs_rank = len(call_args[0].shape) if call_args else None
                layout = einsum_layout(layer.einsum_str or "", len(layer.shape), lhs_rank)
                if layout is not None:
                    layouts[kernel] = layout
            elif isinstance(layer, nn.Embed):
                layouts[f"{prefix}/embedding"] = EMBEDDING
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
    return layouts


def _tuple(x) -> tuple:
    if isinstance(x, int):
        return (x,)
    return tuple(x)


def fans(shape: tuple[int, ...], layout: Layout) -> tuple[int, int]:
    """(fan_in, fan_out): the products of the input and of the output axes."""
    inputs, outputs = layout
    return math.prod(shape[a] for a in inputs), math.prod(shape[a] for a in outputs)
