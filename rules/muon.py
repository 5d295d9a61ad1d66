"""Muon + Adam under a rule: the optax side of the "muon" family (rules/muon_family.py).

Per parameter p with scales s (`MuonScales`), global lr and decay wd:

    Muon matrix:  p <- p - lr (s.base s.lr O + wd s.weight_decay p),  O = NS5(momentum)
    the rest:     p <- p - lr (s.lr A + wd s.weight_decay p),  A = m / (sqrt(v) + eps s.adam_eps)

O is optax's `scale_by_muon` (optax.contrib, this project's pinned 0.2.8) with its defaults
(Keller Jordan's quintic coefficients (3.4445, -4.7750, 2.0315), 5 steps, Frobenius
pre-normalisation, beta 0.95, Nesterov) and **no** shape scaling of its own (optax's
`muon` alias would add sqrt(max(1, fan_out / fan_in)) or consistent RMS): every shape factor
is `s.base x s.lr`, so `describe` shows it and nothing scales a matrix twice. Kernels are
reshaped by their `MuonScales.matrix` axes (Flax's (in, out), conv (k x k x c_in, c_out),
multi-axis attention kernels by their layouts); leading stacked-block axes are batch axes,
each block orthogonalised on its own. A is this project's Adam (the `adam` optimizer's), so
the Adam half is exactly what `--optimizer=adam` would do to those parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

from rules.infer import path_string
from rules.meta import LayerMeta, Scales
from rules.muon_family import MuonScales, base_factor, takes
from rules.validation import RuleError


def _table(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "lr"))[0]
    return {path_string(path): leaf for path, leaf in leaves}


def _by_path(table: dict[str, Any], fn):
    """A callable tree -> tree of fn(table[path]) at each leaf's path."""

    def build(tree):
        return jax.tree_util.tree_map_with_path(lambda p, _: fn(table[path_string(p)]), tree)

    return build


def matrix_axes(
    name: str, shape: tuple[int, ...], meta: LayerMeta, layout=None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(input axes, output axes) of a Muon matrix, negative: the module's `layout` when
    known, else the trailing axes whose product is fan_out, and before them those whose
    product is fan_in (Flax's (..., in, out): Dense, Conv, DenseGeneral, stacked blocks).
    ValueError when the shape is no such matrix."""
    rank = len(shape)
    if rank < 2:
        raise RuleError(
            f"{name}: Muon updates hidden matrices, and this {meta.role} parameter has shape "
            f"{shape}; give it another role (overrides={{'^{name}$': 'bias'}} or 'norm')"
        )
    if layout is not None:
        inputs, outputs = layout
        if all(-rank <= a < 0 for a in inputs + outputs) and inputs and outputs:
            return tuple(inputs), tuple(outputs)
    outputs = _trailing(shape, rank, meta.fan_out)
    inputs = _trailing(shape, rank - len(outputs or ()), meta.fan_in) if outputs else None
    if not outputs or not inputs:
        raise RuleError(
            f"{name}: Muon cannot read a (fan_in {meta.fan_in}, fan_out {meta.fan_out}) matrix "
            f"off shape {shape} (its output axes must be the last ones, its input axes just "
            "before them); give the kernel's layout (rules.nnx_layouts / linen_layouts) or "
            "train it with Adam (a role other than 'hidden')"
        )
    offset = len(outputs)
    return tuple(a - offset for a in inputs), outputs


def _trailing(shape, end: int, product: int) -> tuple[int, ...] | None:
    """Negative indices of the axes shape[k:end] whose sizes multiply to `product`."""
    total = 1
    for k in range(end - 1, -1, -1):
        total *= shape[k]
        if total == product:
            return tuple(range(k - end, 0))
        if total > product:
            return None
    return None


def muon_scales(name: str, shape, meta: LayerMeta | None, scales: Scales, layout=None):
    """`scales` as `MuonScales`: a Muon matrix's axes and base factor, or Adam's route."""
    fields = {f.name: getattr(scales, f.name) for f in dataclasses.fields(Scales)}
    if meta is None or not takes(meta):
        return MuonScales(**fields)
    axes = matrix_axes(name, tuple(shape), meta, layout)
    return MuonScales(**fields, matrix=axes, base=base_factor(meta))


def muon_direction(
    scales: Any, adam: optax.GradientTransformation, *, beta: float = 0.95, ns_steps: int = 5
) -> optax.GradientTransformation:
    """Muon's orthogonalised momentum for the parameters whose `MuonScales.matrix` is set,
    `adam` (the Adam direction) for the rest. `scales`: a tree of `MuonScales`
    (`rules.param_scales` of a model built or parametrized with optimizer="muon")."""
    table = _table(scales)
    if not all(isinstance(s, MuonScales) for s in table.values()):
        raise RuleError(
            "muon needs to know which parameters are matrices: pass the model (or the "
            "Parametrization) built or parametrized with optimizer='muon', not a bare tree "
            "of Scales"
        )
    if not any(s.matrix for s in table.values()):
        raise RuleError("muon: no parameter is a hidden matrix, so Muon would update nothing")
    labels = _by_path(table, lambda s: "muon" if s.matrix else "adam")
    dims = _by_path(table, lambda s: MuonDimensionNumbers(s.matrix[0], s.matrix[1]))
    muon = scale_by_muon(beta=beta, ns_steps=ns_steps, weight_dimension_numbers=dims)
    return optax.partition({"muon": muon, "adam": adam}, labels)


def step_multiplier(scales: Any) -> Any:
    """Each parameter's factor on its direction: s.lr, times `base` for Muon matrices."""
    return jax.tree.map(lambda s: s.lr * s.base, scales, is_leaf=lambda x: hasattr(x, "lr"))


def nnx_muon_scales(model, scales: dict) -> dict:
    """The pure dict `scales` of an NNX model with `MuonScales` leaves (matrix axes from the
    model's own layouts where Flax modules made the kernel, else from the fans)."""
    from flax import nnx

    from rules.layouts import nnx_layouts

    layouts = nnx_layouts(model)
    flat = {}
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        name = "/".join(str(p) for p in path)
        flat[name] = (variable.get_metadata().get("meta"), variable.shape, layouts.get(name))

    def one(path, s):
        name = path_string(path)
        meta, shape, layout = flat[name]
        return muon_scales(name, shape, meta, s, layout)

    return jax.tree_util.tree_map_with_path(one, scales, is_leaf=lambda x: hasattr(x, "lr"))


def tree_muon_scales(metas: Any, scales: Any, shapes: Any) -> Any:
    """`MuonScales` for a `Parametrization`'s trees (matrix axes from the fans)."""
    flat_metas = jax.tree.leaves(metas, is_leaf=lambda x: hasattr(x, "role"))
    flat_shapes = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
    leaves, treedef = jax.tree_util.tree_flatten(scales, is_leaf=lambda x: hasattr(x, "lr"))
    made = [
        muon_scales(m.path, shape, m, s) for m, s, shape in zip(flat_metas, leaves, flat_shapes)
    ]
    return jax.tree_util.tree_unflatten(treedef, made)


def route(scales: Any) -> str:
    """Which optimizer updates a parameter with these scales ('muon' or 'adam')."""
    return "muon" if getattr(scales, "matrix", None) else "adam"
