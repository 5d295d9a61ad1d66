"""Rules for Flax models written without `rules`, in NNX or Linen: `parametrize`.

Each parameter's metadata is inferred by comparing its shape with the same model built
at a base width (`jax.eval_shape`/`nnx.eval_shape`, no compute): an axis that differs
grows with width. Which axes of a kernel are its inputs comes from the module that made
it (`rules.layouts`), else from Flax's layout (..., in, out) when no axis before the last
two grows; anything else is an error naming the parameter and the override that fixes it.
At the base width itself, a `delta` model (another width) tells which axes grow.

A foreign forward pass has no multipliers, so a rule's multiplier a is folded into init
and LR with the abc symmetry (Yang & Hu): (a, std, lr) acts like (1, a std, a lr) under
Adam and (1, a std, a^2 lr) under SGD, with Adam's epsilon divided by a. The residual
branch and attention-logit multipliers are not parameters: the user's forward pass
applies them (`Parametrization.branch_multiplier`, `Parametrization.logit_scale`,
`Parametrization.tied_readout_multiplier`).

Values: by default (`init="keep"`) the author's own init is kept, rescaled by the rule's
width factor away from the base shape (`rules.rescale`, microsoft/mup's way); `init="rule"`
redraws every parameter by the rule's formula, as the project's own layers draw them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rules.algebra import Rule
from rules.gains import gain as activation_gain
from rules.layouts import Layouts, fans
from rules.meta import LayerMeta, Scales
from rules.muon_family import update_text
from rules.optim_names import OPTIMIZERS
from rules.validation import RuleError, check

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
    params, base_params = _unbox(params), _unbox(base_params)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    base_leaves, base_treedef = jax.tree_util.tree_flatten_with_path(base_params)
    if treedef != base_treedef:
        raise ValueError("the base model has a different parameter structure than the model")
    reference = [tuple(jnp.shape(x)) for x in jax.tree.leaves(_unbox(delta_params))]
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


def fold_multiplier(scales: Scales, optimizer: str) -> Scales:
    """The same training dynamics with multiplier 1 (abc symmetry)."""
    a = scales.multiplier
    lr = scales.lr * (a * a if optimizer == "sgd" else a)  # adam, muon: scale-free steps
    return scales.replace(
        multiplier=1.0, init_std=scales.init_std * a, lr=lr, adam_eps=scales.adam_eps / a
    )


def _is_meta(x: Any) -> bool:
    return isinstance(x, LayerMeta)


def _is_scales(x: Any) -> bool:
    return isinstance(x, Scales)


def rule_scales(rule: Rule, metas: Any) -> Any:
    """A tree of Scales for `metas`, multipliers folded in; RuleError if the rule cannot fit."""
    flat = jax.tree.leaves(metas, is_leaf=_is_meta)
    if "residual" in rule.requires and not any(m.in_residual_branch for m in flat):
        raise RuleError(
            f"rule {rule.name!r} scales residual branches: pass residual=<regex of the "
            "parameters inside branches>, depth=<blocks> and base_depth=<base blocks>, and "
            "multiply each branch output by the returned parametrization's branch_multiplier"
        )
    check(rule, flat)
    return jax.tree.map(lambda m: fold_multiplier(rule(m), m.optimizer), metas, is_leaf=_is_meta)


def initialize(params: Any, metas: Any, scales: Any, key: jax.Array) -> Any:
    """Fresh values: N(0, init_std) for weights and biases, 1 + N(0, init_std) for norm scales."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    meta_leaves = jax.tree.leaves(metas, is_leaf=_is_meta)
    scale_leaves = jax.tree.leaves(scales, is_leaf=_is_scales)
    keys = jax.random.split(key, len(leaves))
    fresh = [
        (1.0 if meta.role == "norm" else 0.0)
        + s.init_std * jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf))
        for leaf, meta, s, k in zip(leaves, meta_leaves, scale_leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(treedef, fresh)


def _is_box(x: Any) -> bool:
    from flax.core import meta

    return isinstance(x, meta.AxisMetadata)


def _unbox(tree: Any) -> Any:
    """Linen boxed params (LogicallyPartitioned, Partitioned) as plain arrays."""
    if tree is None:
        return None
    return jax.tree.map(lambda x: x.unbox() if _is_box(x) else x, tree, is_leaf=_is_box)


def _rebox(boxed: Any, values: Any) -> Any:
    """`values` put back into the boxes of `boxed` (names and sharding unchanged)."""
    return jax.tree.map(
        lambda box, value: box.replace_boxed(value) if _is_box(box) else value,
        boxed,
        values,
        is_leaf=_is_box,
    )


@dataclasses.dataclass(frozen=True)
class Parametrization:
    """What `parametrize` decided: the rule, and per parameter its LayerMeta and Scales
    (trees with the structure of the unboxed params; multipliers folded into the Scales)."""

    rule: Rule
    metas: Any
    scales: Any
    shapes: Any
    depth: int = 1
    base_depth: int = 1
    init_factors: Any = None  # init="keep": the factor on the author's base init (rules.rescale)

    @property
    def optimizer(self) -> str:
        """The optimizer family ("sgd" | "adam") the LR multipliers are for."""
        return jax.tree.leaves(self.metas, is_leaf=_is_meta)[0].optimizer

    @property
    def branch_multiplier(self) -> float:
        """The factor on each residual branch's output, applied by the user's block."""
        from rules.residual import residual_multiplier

        return residual_multiplier(self.rule, self.depth, self.base_depth)

    def logit_scale(self, head_dim: int, base_head_dim: int | None) -> float:
        """The factor on attention logits q.k (`rules.logit_scale`)."""
        from rules.attention import logit_scale

        return logit_scale(self.rule, head_dim, base_head_dim)

    def tied_readout_multiplier(self, width: int, base_width: int | None) -> float:
        """The factor on tied logits h @ table^T (`rules.tied_readout_multiplier`)."""
        from rules.rescale import tied_readout_multiplier

        return tied_readout_multiplier(self.rule, width, base_width, optimizer=self.optimizer)

    def lr_multipliers(self) -> Any:
        return jax.tree.map(lambda s: s.lr, self.scales, is_leaf=_is_scales)

    def rows(self) -> list[dict]:
        """One report row per parameter (the columns of `rules.describe`)."""
        flat_metas = jax.tree.leaves(self.metas, is_leaf=_is_meta)
        flat_scales = jax.tree.leaves(self.scales, is_leaf=_is_scales)
        flat_shapes = jax.tree.leaves(self.shapes, is_leaf=lambda x: isinstance(x, tuple))
        flat_factors = (
            [None] * len(flat_metas)
            if self.init_factors is None
            else jax.tree.leaves(self.init_factors)
        )
        return [
            {
                "path": m.path,
                "role": m.role,
                "shape": shape,
                "fan_in": m.fan_in,
                "init_std": s.init_std,
                "multiplier": s.multiplier,
                "lr_multiplier": s.lr,
                "wd_multiplier": s.weight_decay,
                "eps_multiplier": s.adam_eps,
                "init_factor": factor,
                "update": update_text(m),
            }
            for m, s, shape, factor in zip(flat_metas, flat_scales, flat_shapes, flat_factors)
        ]

    def describe(self, title: str = "") -> str:
        from rules.report import format_rows

        return format_rows(self.rows(), title)


def _parametrize_tree(params, base, rule, init, key, zero, delta, **kwargs):
    """(values, Parametrization) for a params tree; `init` None leaves the values as given."""
    from rules import rescale

    plain, plain_base = _unbox(params), _unbox(base)
    metas = infer_metas(plain, plain_base, delta_params=delta, **kwargs)
    scales = rule_scales(rule, metas)
    factors = rescale.init_factors(rule, metas)
    shapes = jax.tree.map(lambda x: tuple(jnp.shape(x)), plain)
    plan = Parametrization(
        rule, metas, scales, shapes, kwargs.get("depth", 1), kwargs.get("base_depth", 1), factors
    )
    if init == "rule":
        values = initialize(plain, metas, scales, key)
    elif init == "keep":
        values = rescale.keep_values(plain, plain_base, metas, factors)
    else:
        values = plain
    if zero:
        values = rescale.zero_values(values, rescale.zero_mask(metas, zero))
    return values, plan


def _same_shapes(a: Any, b: Any) -> bool:
    return [jnp.shape(x) for x in jax.tree.leaves(_unbox(a))] == [
        jnp.shape(x) for x in jax.tree.leaves(_unbox(b))
    ]


INIT_MODES = ("keep", "rule", None)
_NO_KEY = object()  # `key` not given (key=None is the pre-`init` spelling of init=None)


def _init_mode(init: str | None, key: Any, zero: Any) -> str | None:
    """The init mode `parametrize` runs, from `init` and the (older) `key` argument."""
    if init not in INIT_MODES:
        raise ValueError(f"init must be 'keep', 'rule' or None, got {init!r}")
    if key is None and init == "keep":
        init = None  # key=None: values untouched, as before `init` existed
    if init == "rule" and (key is None or key is _NO_KEY):
        raise ValueError("init='rule' draws new values by the rule's formula: pass key=")
    if init != "rule" and key is not None and key is not _NO_KEY:
        raise ValueError(
            "key= only serves init='rule' (a redraw by the rule's formula); the default "
            "init='keep' rescales your model's own init and needs no key"
        )
    if init is None and zero:
        raise ValueError("zero= sets values, and init=None (or key=None) leaves them untouched")
    return init


# Linen collections that are not parameters (model.init returns them beside "params").
NON_PARAM_COLLECTIONS = ("batch_stats", "cache", "intermediates", "losses", "perturbations")


def _refuse_variables(tree: Any, what: str) -> None:
    """RuleError for Linen's whole variables dict where its "params" belong."""
    if not isinstance(tree, Mapping):
        return
    keys = [str(k) for k in tree]
    has_params = "params" in keys and isinstance(tree["params"], Mapping)
    if has_params or any(k in NON_PARAM_COLLECTIONS for k in keys):
        raise RuleError(
            f"{what} look like Linen's whole variables dict (collections: {', '.join(keys)}); "
            f"pass variables['params']: rules scales parameters only, and the other "
            "collections go to model.apply as they are"
        )


def parametrize(
    target: Any,
    base: Any,
    rule: Rule,
    *,
    optimizer: str,
    activation: str | float,
    init: str | None = "keep",
    key: jax.Array | None = _NO_KEY,
    zero: str | tuple[str, ...] = (),
    delta: Any = None,
    **kwargs: Any,
) -> Any:
    """Infer each parameter's metadata, set its initial values and attach its scales.

    NNX: `target`, `base` (and `delta`) are models; the Params are updated in place and
    carry `meta`, `scales` and `init_factor` metadata (so `rules.describe` and
    `rules.optimizer(name, lr, model)` read them). Returns the `Parametrization`.
    Linen: `target` is a params tree (boxed or not), `base`/`delta` params trees; returns
    `(new params, Parametrization)`, boxes kept.

    init: "keep" (default): the author's own init, untouched at the base shape and times
      the rule's width factor elsewhere (`rules.rescale`; needs the base model's values,
      so build `base` for real, not with eval_shape, unless `target` has the base shapes).
      "rule": redrawn by the rule's formula from `key` (N(0, init_std); biases 0, norm
      scales 1), as the project's own layers do. None: values untouched (re-attaching the
      scales to a restored or abstract model; `key=None` means the same).
    zero: parameters to start at zero, e.g. ("readout", "query") (microsoft/mup's zero
      readout and zero query init; other entries are regexes of parameter paths).
    optimizer: the optimizer the model will train with (`rules.optimizer` refuses another
      family). activation: the hidden activation or its gain. delta: the model at another
      width (abstract is enough), needed when the model has the base shapes.
    Other keywords: `infer_metas`' (input_gain, depth, base_depth, residual, overrides,
    layouts).
    """
    from flax import nnx

    init = _init_mode(init, key, zero)
    common = dict(optimizer=optimizer, activation=activation, **kwargs)
    if isinstance(target, nnx.Module):
        params = nnx.to_pure_dict(nnx.state(target, nnx.Param))
        base_params = nnx.to_pure_dict(nnx.state(base, nnx.Param))
        delta_params = None if delta is None else nnx.to_pure_dict(nnx.state(delta, nnx.Param))
        if delta is None and _same_shapes(params, base_params):
            raise RuleError(_BASE_MESSAGE)
        if "layouts" not in common:
            from rules.layouts import nnx_layouts

            common["layouts"] = nnx_layouts(target)
        fresh, plan = _parametrize_tree(
            params, base_params, rule, init, key, zero, delta_params, **common
        )
        state = nnx.state(target, nnx.Param)
        if init is not None:
            nnx.replace_by_pure_dict(state, fresh)
            nnx.update(target, state)
        flat_meta = dict(nnx.to_flat_state(nnx.State(plan.metas)))
        flat_scales = dict(nnx.to_flat_state(nnx.State(plan.scales)))
        flat_factors = dict(nnx.to_flat_state(nnx.State(plan.init_factors)))
        for path, variable in nnx.to_flat_state(nnx.state(target, nnx.Param)):
            variable.set_metadata(
                meta=flat_meta[path], scales=flat_scales[path], init_factor=flat_factors[path]
            )
        return plan
    _refuse_variables(target, "the params")
    _refuse_variables(base, "the base params")
    _refuse_variables(delta, "the delta params")
    if delta is None and _same_shapes(target, base):
        raise RuleError(_BASE_MESSAGE)
    fresh, plan = _parametrize_tree(target, base, rule, init, key, zero, delta, **common)
    return _rebox(target, fresh), plan


_BASE_MESSAGE = (
    "the model has the base shapes, so its shapes cannot tell which dimensions grow with "
    "width; also pass delta= (the same model at another width, abstract)"
)


def apply_to_linen(
    params: Any, base_params: Any, rule: Rule, key: jax.Array, **infer_kwargs
) -> tuple[Any, Any, Any]:
    """(new params, scales, metas) for a Linen params tree (`parametrize` unpacked)."""
    new, plan = parametrize(params, base_params, rule, init="rule", key=key, **infer_kwargs)
    return new, plan.scales, plan.metas


def apply_to_nnx(model, base_model, rule: Rule, key: jax.Array, **infer_kwargs) -> Any:
    """Re-initialise an NNX model in place (`parametrize`); returns its scales tree."""
    return parametrize(model, base_model, rule, init="rule", key=key, **infer_kwargs).scales
