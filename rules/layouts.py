"""Which axes of a kernel are its inputs (fan_in), read off the Flax modules that own it.

Shapes alone cannot split a kernel of rank 3 or more into input and output axes: an
attention query `(d_model, heads, head_dim)` (DenseGeneral, input axis 0) and an attention
output `(heads, head_dim, d_model)` (input axes 0 and 1) look alike once heads or head_dim
grow. The module that made the kernel knows. A layout maps a kernel's path ('a/b/kernel')
to the tuple of its input axes.

- NNX: `nnx_layouts(model)` reads the modules of the model (abstract models work).
- Linen: `linen_layouts(module, *args)` traces `module.init(key, *args)` abstractly and
  records each Dense/DenseGeneral/Einsum/Conv/Embed call.
"""

from __future__ import annotations

import math
from typing import Any

import jax

Layouts = dict[str, tuple[int, ...]]


def einsum_input_axes(equation: str, kernel_rank: int, lhs_rank: int | None = None):
    """Kernel axes contracted with the input in `equation` ('btd,dhk->bthk': (0,)).

    The kernel is the second operand. None when an ellipsis in the kernel's subscripts
    cannot be expanded (no input rank given).
    """
    operands, _, result = equation.replace(" ", "").partition("->")
    lhs, _, rhs = operands.partition(",")
    if "..." in rhs:
        return None
    if "..." in lhs and lhs_rank is not None:
        lhs = lhs.replace("...", "#" * (lhs_rank - len(lhs.replace("...", ""))))
    if len(rhs) != kernel_rank:
        return None
    return tuple(i for i, c in enumerate(rhs) if c in lhs and c not in result)


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
        if isinstance(module, (nnx.Linear, nnx.Conv, nnx.ConvTranspose)):
            rank = len(module.kernel.shape)
            layouts[kernel] = tuple(range(rank - 1))
        elif isinstance(module, nnx.LinearGeneral):
            start = len(module.batch_axis)
            layouts[kernel] = tuple(range(start, start + len(module.in_features)))
        elif isinstance(module, nnx.Einsum):
            axes = einsum_input_axes(module.einsum_str, len(module.kernel_shape))
            if axes is not None:
                layouts[kernel] = axes
        elif isinstance(module, nnx.Embed):
            layouts[f"{prefix}/embedding" if prefix else "embedding"] = ()
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
            if isinstance(layer, (nn.Dense, nn.Conv, nn.ConvTranspose)):
                rank = 2 if isinstance(layer, nn.Dense) else len(_tuple(layer.kernel_size)) + 2
                layouts[kernel] = tuple(range(rank - 1))
            elif isinstance(layer, nn.DenseGeneral):
                start = len(_tuple(layer.batch_dims))
                layouts[kernel] = tuple(range(start, start + len(_tuple(layer.axis))))
            elif isinstance(layer, nn.Einsum):
                lhs_rank = len(call_args[0].shape) if call_args else None
                axes = einsum_input_axes(layer.einsum_str or "", len(layer.shape), lhs_rank)
                if axes is not None:
                    layouts[kernel] = axes
            elif isinstance(layer, nn.Embed):
                layouts[f"{prefix}/embedding"] = ()
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
    return layouts


def _tuple(x) -> tuple:
    if isinstance(x, int):
        return (x,)
    return tuple(x)


def fans(shape: tuple[int, ...], input_axes: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out): the product of the input axes and of the others."""
    fan_in = math.prod(shape[a] for a in input_axes)
    fan_out = math.prod(s for a, s in enumerate(shape) if a not in input_axes)
    return fan_in, fan_out
