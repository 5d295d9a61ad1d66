"""What each parameter of a model written without `rules` is: its LayerMeta, inferred from
its shape against the same model at a base width (`infer_metas`).

An axis that differs from the base grows with width. Which axes of a kernel are its inputs
comes from the module that made it (`rules.layouts`), else from Flax's layout (..., in, out)
when no axis before the last two grows; anything else is an error naming the parameter and
the override that fixes it. At the base width itself, a `delta` model (another width) tells
which axes grow. Linen's boxed params (`nn.meta.AxisMetadata`) are read through their boxes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rules.gains import gain as activation_gain
from rules.layouts import Layouts, fans
from rules.meta import LayerMeta
from rules.optim_names import OPTIMIZERS
from rules.validation import RuleError

Overrides = Mapping[str, str | Mapping[str, Any]]
NORM_NAMES = ("scale",)  # LayerNorm, RMSNorm, BatchNorm, GroupNorm
BIAS_NAMES = ("bias",)
EMBEDDING_NAMES = ("embedding",)  # nn.Embed / nnx.Embed: a row lookup reads one coordinate


def path_string(path) -> str:
    """'layers/0/kernel' from a jax key path; a Variable's or box's `.value` is skipped."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey) and key.name == "value":
            continue
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return "/".join(parts)


def _fix_hint(name: str, what: str) -> str:
    return f"overrides={{{('^' + re.escape(name) + '$')!r}: {what}}}"


def _matching(name: str, overrides: Overrides | None) -> dict:
    """The override fields for `name`; later patterns win."""
    fields: dict = {}
    for pattern, change in (overrides or {}).items():
        if re.search(pattern, name):
            fields.update({"role": change} if isinstance(change, str) else dict(change))
    return fields


def _layout(name, shape, grows, layouts, fields) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(input axes, output axes) of a kernel, as non-negative indices."""
    rank = len(shape)
    if "input_axes" in fields:
        inputs = tuple(sorted(a % rank for a in fields["input_axes"]))
        return inputs, tuple(a for a in range(rank) if a not in inputs)
    if name in layouts:
        inputs, outputs = layouts[name]
        if any(a < -rank for a in inputs + outputs):
            raise RuleError(f"{name}: the layout {layouts[name]} does not fit shape {shape}")
        return tuple(a % rank for a in inputs), tuple(a % rank for a in outputs)
    if name.rsplit("/", 1)[-1] in EMBEDDING_NAMES:
        return (), (rank - 1,)
    if not any(grows[:-2]):
        return tuple(range(rank - 1)), (rank - 1,)  # Flax's (..., in, out): Dense, Conv
    raise RuleError(
        f"{name}: cannot tell the input axes of a kernel of shape {shape} from its shape "
        f"(axes {[a for a, g in enumerate(grows) if g]} grow with width); say which, e.g. "
        + _fix_hint(name, "{'input_axes': (0,)}")
        + ", or pass layouts=rules.linen_layouts(model, x) for Linen"
    )


def _infer_one(name, shape, base, grows, *, layouts, fields, gain, input_gain, common):
    leaf = name.rsplit("/", 1)[-1]
    role = fields.get("role")
    vector = role in ("bias", "norm") or (
        role is None and (leaf in NORM_NAMES + BIAS_NAMES or len(shape) < 2)
    )
    if vector:
        if role is None:
            if leaf not in NORM_NAMES + BIAS_NAMES:
                raise RuleError(
                    f"{name}: cannot tell whether this parameter of shape {shape} is a bias or "
                    f"a norm scale; say which with {_fix_hint(name, repr('bias'))} (or 'norm')"
                )
            role = "norm" if leaf in NORM_NAMES else "bias"
        size, base_size = _prod(shape), _prod(base)
        meta = LayerMeta(
            role=role,
            fan_in=1,
            fan_out=size,
            base_fan_out=base_size if any(grows) else None,
            gain=gain,
            path=name,
            **common,
        )
    else:
        layout = _layout(name, shape, grows, layouts, fields)
        scales_in = any(grows[a] for a in layout[0])  # no input axis: a lookup table
        scales_out = any(grows[a] for a in layout[1])
        if role is None:
            role = {(False, True): "input", (True, False): "output"}.get(
                (scales_in, scales_out), "hidden"
            )
        fan_in, fan_out = fans(shape, layout)
        base_in, base_out = fans(base, layout)
        meta = LayerMeta(
            role=role,
            fan_in=fan_in,
            fan_out=fan_out,
            base_fan_in=base_in if scales_in else None,
            base_fan_out=base_out if scales_out else None,
            gain=input_gain if role == "input" else gain,
            path=name,
            **common,
        )
    fields = {k: v for k, v in fields.items() if k not in ("role", "input_axes")}
    return dataclasses.replace(meta, **fields)


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def _family(optimizer: str) -> str:
    if optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]
    if optimizer in ("sgd", "adam", "muon"):
        return optimizer
    raise ValueError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")


def infer_metas(
    params: Any,
    base_params: Any,
    *,
    optimizer: str,
    activation: str | float,
    input_gain: float = 1.0,
    delta_params: Any = None,
    depth: int = 1,
    base_depth: int = 1,
    residual: str | None = None,
    overrides: Overrides | None = None,
    layouts: Layouts | None = None,
) -> Any:
    """A tree of LayerMeta like `params` (unboxed), from its shapes against `base_params`'.

    optimizer: the optimizer (or family, "sgd" | "adam") the model will be trained with.
    activation: the hidden activation ("relu", "gelu", ...) or its gain; weights whose input
      dimension does not grow (input layers) read raw data and get `input_gain`.
    delta_params: the model at another width, to tell which axes grow (needed at the base).
    residual: a regex of the parameters inside residual branches; they get
      `in_residual_branch=True` and `num_blocks=depth` (depth counts residual blocks).
    overrides: a regex (searched in 'a/b/kernel' paths) -> a role, or a dict of LayerMeta
      fields plus "input_axes" (the kernel's input axes); later patterns win.
    layouts: kernel path -> input axes (`rules.nnx_layouts`, `rules.linen_layouts`).
    """
    params, base_params = unbox(params), unbox(base_params)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    base_leaves, base_treedef = jax.tree_util.tree_flatten_with_path(base_params)
    if treedef != base_treedef:
        raise ValueError("the base model has a different parameter structure than the model")
    reference = [tuple(jnp.shape(x)) for x in jax.tree.leaves(unbox(delta_params))]
    if delta_params is not None and len(reference) != len(leaves):
        raise ValueError("the delta model has a different parameter structure than the model")
    gain = activation if isinstance(activation, (int, float)) else activation_gain(activation)
    common = dict(optimizer=_family(optimizer), depth=depth, base_depth=base_depth)
    metas = []
    for index, ((path, leaf), (_, base_leaf)) in enumerate(zip(leaves, base_leaves)):
        name = path_string(path)
        shape, base = tuple(jnp.shape(leaf)), tuple(jnp.shape(base_leaf))
        if len(shape) != len(base):
            raise ValueError(f"{name}: shape {shape} and base shape {base} differ in rank")
        other = reference[index] if reference else shape
        grows = tuple(a != b for a, b in zip(other, base))
        branch = {}
        if residual is not None and re.search(residual, name):
            branch = dict(in_residual_branch=True, num_blocks=depth)
        meta = _infer_one(
            name,
            shape,
            base,
            grows,
            layouts=layouts or {},
            fields={**branch, **_matching(name, overrides)},
            gain=gain,
            input_gain=input_gain,
            common=common,
        )
        metas.append(meta)
    return jax.tree_util.tree_unflatten(treedef, metas)


def _is_box(x: Any) -> bool:
    from flax.core import meta

    return isinstance(x, meta.AxisMetadata)


def unbox(tree: Any) -> Any:
    """Linen boxed params (LogicallyPartitioned, Partitioned) as plain arrays."""
    if tree is None:
        return None
    return jax.tree.map(lambda x: x.unbox() if _is_box(x) else x, tree, is_leaf=_is_box)


def rebox(boxed: Any, values: Any) -> Any:
    """`values` put back into the boxes of `boxed` (names and sharding unchanged)."""
    return jax.tree.map(
        lambda box, value: box.replace_boxed(value) if _is_box(box) else value,
        boxed,
        values,
        is_leaf=_is_box,
    )
