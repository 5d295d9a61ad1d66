"""Optax adapters: every optimizer with per-parameter LR, weight-decay and epsilon multipliers.

Update of a parameter p with scales s, direction d (SGD: the gradient; momentum: its
trace; Adam: m / (sqrt(v) + eps x s.adam_eps); Lion: the sign of the interpolation):

    p <- p - lr x (s.lr x d + weight_decay x s.weight_decay x p)

Decay is decoupled and not multiplied by s.lr (see `Scales.weight_decay`).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rules.infer import path_string
from rules.meta import Scales
from rules.nnx_layers import scales_of
from rules.optim_names import OPTIMIZERS
from rules.validation import RuleError


class ScaleByTreeState(NamedTuple):
    pass


def _table(tree: Any, is_leaf=None) -> dict[str, Any]:
    """Leaves of `tree` by path ('a/b/kernel'), so that any container with the same paths
    (dict, FrozenDict, nnx.State of arrays or Variables, boxed Linen params) matches."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
    return {path_string(path): leaf for path, leaf in leaves}


def _map_by_path(fn, table: dict[str, Any], tree: Any, *rest: Any) -> Any:
    """fn(leaf, *rest_leaves, table[path]) over `tree`; a clear error for unknown paths."""

    def one(path, leaf, *others):
        name = path_string(path)
        if name not in table:
            raise ValueError(
                f"the optimizer has no scales for parameter {name!r}; build it from the "
                "same model (or params tree) it updates"
            )
        return fn(leaf, *others, table[name])

    return jax.tree_util.tree_map_with_path(one, tree, *rest)


def scale_by_tree(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each update leaf by the leaf of `multipliers` (a tree of floats) at its path."""
    table = _table(multipliers)

    def init(params):
        del params
        return ScaleByTreeState()

    def update(updates, state, params=None):
        del params
        return _map_by_path(lambda u, m: u * m, table, updates), state

    return optax.GradientTransformation(init, update)


def add_decayed_weights_tree(weight_decay: float, multipliers: Any) -> optax.GradientTransformation:
    """updates + weight_decay x multiplier x params, leaf by leaf."""
    table = _table(multipliers)

    def init(params):
        del params
        return ScaleByTreeState()

    def update(updates, state, params=None):
        if isinstance(weight_decay, (int, float)) and weight_decay == 0:
            return updates, state  # a Python zero: skip the pass (XLA keeps 0 * p for NaNs)
        if params is None:
            raise ValueError("weight decay needs the parameters: call update(g, state, params)")
        decayed = _map_by_path(lambda u, p, m: u + weight_decay * m * p, table, updates, params)
        return decayed, state

    return optax.GradientTransformation(init, update)


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adam_tree_eps(b1: float, b2: float, eps: float, eps_multipliers: Any):
    """Adam's direction m_hat / (sqrt(v_hat) + eps x multiplier), epsilon per parameter."""
    table = _table(eps_multipliers)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(jnp.zeros([], jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        mu_correction, nu_correction = 1 - b1**count, 1 - b2**count

        def direction(m, v, e):
            return (m / mu_correction) / (jnp.sqrt(v / nu_correction) + eps * e)

        return _map_by_path(direction, table, mu, nu), AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def _field(scales: Any, name: str) -> Any:
    return jax.tree.map(lambda s: getattr(s, name), scales, is_leaf=_is_scales)


def _is_scales(x: Any) -> bool:
    return isinstance(x, Scales)


def optimizer_scales(name: str, source: Any) -> Any:
    """The tree of `Scales` an optimizer `name` applies, from a model, a Parametrization or
    a tree of Scales. RuleError if the model was scaled for another optimizer family
    (the LR exponents of sgd and adam differ, and init was chosen with them)."""
    from rules.parametrization import Parametrization

    if isinstance(source, nnx.Module):
        state = nnx.state(source, nnx.Param)
        metas = [v.get_metadata().get("meta") for _, v in nnx.to_flat_state(state)]
        _check_family(name, [m for m in metas if m is not None])
        return param_scales(source)  # refuses parameters without scales
    if isinstance(source, Parametrization):
        _check_family(name, jax.tree.leaves(source.metas, is_leaf=lambda x: hasattr(x, "role")))
        if OPTIMIZERS[name] == "muon":
            from rules.muon import tree_muon_scales

            return tree_muon_scales(source.metas, source.scales, source.shapes)
        return source.scales
    leaves = jax.tree.leaves(source, is_leaf=_is_scales)
    if not all(_is_scales(x) for x in leaves):
        linen = leaves and not any(_is_scales(x) for x in leaves)
        hint = "; for Linen params, pass the Parametrization that rules.parametrize returns"
        raise TypeError(
            "scales must be an NNX model, a rules.Parametrization or a tree of rules.Scales"
            + (hint if linen else "")
        )
    return source


def _check_family(name: str, metas: list) -> None:
    family = OPTIMIZERS[name]
    for meta in metas:
        if meta.optimizer != family:
            where = meta.path or "a parameter"
            raise RuleError(
                f"the model was scaled for {meta.optimizer!r} optimizers ({where} has their "
                f"LR exponents) and {name!r} is an {family!r} optimizer; build or "
                f"parametrize the model with optimizer={name!r}"
            )


WEIGHT_DECAY_MODES = ("coupled", "independent")  # rules/decay.py
# The arguments `inject` may hold as arrays in the optimizer state.
INJECTABLE = ("learning_rate", "weight_decay", "momentum", "b1", "b2", "eps")


def optimizer(
    name: str,
    learning_rate: float,
    scales: Any,
    *,
    weight_decay: float = 0.0,
    weight_decay_mode: str = "coupled",
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lr_factor: float = 1.0,
    inject: bool | tuple[str, ...] = (),
) -> optax.GradientTransformation:
    """Optimizer `name` (see OPTIMIZERS) with each parameter's LR, weight-decay and
    Adam-epsilon multipliers: p <- p - lr (s.lr d + weight_decay s.weight_decay p).

    `scales`: an NNX model (its Params' metadata; use with `nnx.Optimizer(model, tx,
    wrt=nnx.Param)`), the `Parametrization` of `rules.parametrize` (Linen params), or a
    tree of `Scales` whose paths match the params'. A model or Parametrization scaled for
    another optimizer family is refused, and so is a model with Params that carry no
    scales. "adam" and "adamw" differ only in the weight decay callers usually give them.
    Lion uses b1=0.9, b2=0.99 unless given otherwise.

    weight_decay_mode: "coupled" (the decay above, times the LR and its schedule) or
      "independent" (p <- p - weight_decay s.weight_decay p per step, not times the LR;
      rules/decay.py). lr_factor: a constant factor on `learning_rate` (a run axis's LR
      correction, rules/axes.py) that an injected learning rate does not include.
    inject: arguments held as arrays in the optimizer state (`optax.inject_hyperparams`),
      so one compiled step serves every value a sweep sets: a tuple of names, e.g.
      ("learning_rate",), the others constants; or True for all of `INJECTABLE` (the
      learning rate, weight decay, momentum, b1, b2 and eps, as the app's runs hold them).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(
            f"unknown weight_decay_mode {weight_decay_mode!r}; choose coupled or independent"
        )
    inject = INJECTABLE if inject is True else tuple(inject or ())
    unknown = [k for k in inject if k not in INJECTABLE]
    if unknown:
        raise ValueError(f"cannot inject {unknown}; choose from: {', '.join(INJECTABLE)}")
    scales = optimizer_scales(name, scales)
    if name == "lion" and b2 == 0.999:
        b2 = 0.99  # Lion's own default; decided here, where b2 is a number and not yet injected
    values = dict(learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum)
    values |= dict(b1=b1, b2=b2, eps=eps)
    fixed = {k: v for k, v in values.items() if k not in inject}
    build = functools.partial(
        _optimizer, name, scales, weight_decay_mode=weight_decay_mode, lr_factor=lr_factor, **fixed
    )
    if not inject:
        return build()

    def factory(**injected: Any) -> optax.GradientTransformation:
        return build(**injected)

    # inject_hyperparams holds every number its factory's signature takes: give it only these.
    factory.__signature__ = inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in inject]
    )
    return optax.inject_hyperparams(factory)(**{k: values[k] for k in inject})


def _optimizer(
    name: str,
    scales: Any,
    *,
    learning_rate: Any,
    weight_decay: Any,
    weight_decay_mode: str,
    momentum: Any,
    b1: Any,
    b2: Any,
    eps: Any,
    lr_factor: float,
) -> optax.GradientTransformation:
    """`optimizer` with its arguments checked and `scales` a tree of Scales."""
    if lr_factor != 1.0:
        learning_rate = learning_rate * lr_factor
    coupled = weight_decay_mode == "coupled"
    if name == "sgd":
        direction = optax.identity()
    elif name == "momentum":
        direction = optax.trace(decay=momentum)
    elif name == "lion":
        direction = optax.scale_by_lion(b1=b1, b2=b2)
    elif name == "adafactor":
        direction = adafactor_direction()
    else:
        direction = scale_by_adam_tree_eps(b1, b2, eps, _field(scales, "adam_eps"))
    step = _field(scales, "lr")
    if name == "muon":  # Muon for hidden matrices, Adam for the rest: rules/muon.py
        from rules.muon import muon_direction, step_multiplier

        direction, step = muon_direction(scales, direction), step_multiplier(scales)
    # No `if weight_decay:` here: under optax.inject_hyperparams it is a traced array.
    tx = optax.chain(
        direction,
        scale_by_tree(step),
        add_decayed_weights_tree(weight_decay if coupled else 0.0, _field(scales, "weight_decay")),
        optax.scale_by_learning_rate(learning_rate),
    )
    return tx if coupled else optax.chain(tx, independent_decay(weight_decay, scales))


def independent_decay(weight_decay: float, scales: Any) -> optax.GradientTransformation:
    """updates - weight_decay x s.weight_decay x params: decay per step not multiplied by
    the LR (chain it after an optimizer built with weight_decay=0; rules/decay.py)."""
    return add_decayed_weights_tree(-weight_decay, _field(scales, "weight_decay"))


def adafactor_direction() -> optax.GradientTransformation:
    """Adafactor (Shazeer & Stern 2018) as an Adam-family direction: factored second moments
    (decay 1 - t^-0.8) and update clipping at block RMS 1, with relative step sizes and
    momentum off, so the rule's LR multipliers are the only per-parameter factors. Every
    matrix is factored (min_dim_size_to_factor=1: optax's 128 would switch a layer from
    full to factored moments as it widens, in the middle of a width sweep). Its epsilon
    (1e-30, added to g^2) is far below any gradient at every width: Scales.adam_eps is not
    used. For a rank-1 gradient the factored moment is exact and the first step is sign(g),
    Adam's; the clip at RMS 1 does not depend on width (tests/test_rules_muon.py)."""
    return optax.chain(
        optax.scale_by_factored_rms(min_dim_size_to_factor=1), optax.clip_by_block_rms(1.0)
    )


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def param_scales(model: nnx.Module) -> dict:
    """A pure dict of `Scales` with the structure of the model's `nnx.Param` state
    (`MuonScales`, which say how Muon reads each parameter, for the muon family);
    RuleError if some Param carries none (never parametrized, or restored without it)."""
    from rules.nnx_layers import require_scales

    state = nnx.state(model, nnx.Param)
    require_scales(state)
    scales = nnx.to_pure_dict(jax.tree.map(scales_of, state, is_leaf=_is_variable))
    metas = (v.get_metadata().get("meta") for _, v in nnx.to_flat_state(state))
    if any(m is not None and m.optimizer == "muon" for m in metas):
        from rules.muon import nnx_muon_scales

        return nnx_muon_scales(model, scales)
    return scales


def lr_multipliers(model: nnx.Module) -> dict:
    """A pure dict of LR multipliers with the structure of the model's `nnx.Param` state."""
    return _field(param_scales(model), "lr")
