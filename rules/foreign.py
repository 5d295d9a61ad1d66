"""Rules for Flax models written without `rules`, in NNX or Linen: `parametrize`.

Each parameter's metadata is inferred from its shape against the same model at a base
width (`rules.infer`); the rule gives its scales; its starting values are the author's own
init rescaled (default), a redraw by the rule, or untouched (`rules.init_values`); what was
decided comes back as a `Parametrization` (`rules.parametrization`).

A foreign forward pass has no multipliers, so a rule's multiplier a is folded into init
and LR with the abc symmetry (Yang & Hu): (a, std, lr) acts like (1, a std, a lr) under
Adam and (1, a std, a^2 lr) under SGD, with Adam's epsilon divided by a. The residual
branch and attention-logit multipliers are not parameters: the user's forward pass
applies them (`Parametrization.residual_multiplier`, `Parametrization.logit_scale`,
`Parametrization.tied_readout_multiplier`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rules.algebra import Rule
from rules.infer import infer_metas, rebox, unbox
from rules.init_values import NO_KEY, init_mode, initial_values
from rules.meta import LayerMeta, Scales
from rules.parametrization import Parametrization
from rules.validation import RuleError, check


def fold_multiplier(scales: Scales, optimizer: str) -> Scales:
    """The same training dynamics with multiplier 1 (abc symmetry)."""
    a = scales.multiplier
    lr = scales.lr * (a * a if optimizer == "sgd" else a)  # adam, muon: scale-free steps
    return scales.replace(
        multiplier=1.0, init_std=scales.init_std * a, lr=lr, adam_eps=scales.adam_eps / a
    )


def _is_meta(x: Any) -> bool:
    return isinstance(x, LayerMeta)


def rule_scales(rule: Rule, metas: Any) -> Any:
    """A tree of Scales for `metas`, multipliers folded in; RuleError if the rule cannot fit."""
    flat = jax.tree.leaves(metas, is_leaf=_is_meta)
    if "residual" in rule.requires and not any(m.in_residual_branch for m in flat):
        raise RuleError(
            f"rule {rule.name!r} scales residual branches: pass residual=<regex of the "
            "parameters inside branches>, depth=<blocks> and base_depth=<base blocks>, and "
            "multiply each branch output by the returned parametrization's residual_multiplier"
        )
    check(rule, flat)
    return jax.tree.map(lambda m: fold_multiplier(rule(m), m.optimizer), metas, is_leaf=_is_meta)


def _parametrize_tree(params, base, rule, init, key, zero, delta, **kwargs) -> Parametrization:
    """The Parametrization of a params tree, its `params` the new values (unboxed)."""
    from rules import rescale

    plain, plain_base = unbox(params), unbox(base)
    metas = infer_metas(plain, plain_base, delta_params=delta, **kwargs)
    scales = rule_scales(rule, metas)
    factors = rescale.init_factors(rule, metas)
    shapes = jax.tree.map(lambda x: tuple(jnp.shape(x)), plain)
    values = initial_values(plain, plain_base, metas, scales, factors, init, key, zero)
    depths = kwargs.get("depth", 1), kwargs.get("base_depth", 1)
    return Parametrization(rule, metas, scales, shapes, *depths, factors, values)


def _same_shapes(a: Any, b: Any) -> bool:
    return [jnp.shape(x) for x in jax.tree.leaves(unbox(a))] == [
        jnp.shape(x) for x in jax.tree.leaves(unbox(b))
    ]


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
    key: jax.Array | None = NO_KEY,
    zero: str | tuple[str, ...] = (),
    delta: Any = None,
    **kwargs: Any,
) -> Any:
    """Infer each parameter's metadata, set its initial values and attach its scales.

    Returns the `Parametrization` (what was decided, per parameter) for both:
    NNX: `target`, `base` (and `delta`) are models; the Params are updated in place and
    carry `meta`, `scales` and `init_factor` metadata (so `rules.describe` and
    `rules.optimizer(name, lr, model)` read them); `plan.params` is None.
    Linen: `target` is a params tree (boxed or not), `base`/`delta` params trees; the new
    params are `plan.params`, boxes kept.

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

    init = init_mode(init, key, zero)
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
        plan = _parametrize_tree(params, base_params, rule, init, key, zero, delta_params, **common)
        fresh, plan = plan.params, dataclasses.replace(plan, params=None)  # the model holds them
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
    plan = _parametrize_tree(target, base, rule, init, key, zero, delta, **common)
    return dataclasses.replace(plan, params=rebox(target, plan.params))


_BASE_MESSAGE = (
    "the model has the base shapes, so its shapes cannot tell which dimensions grow with "
    "width; also pass delta= (the same model at another width, abstract)"
)
