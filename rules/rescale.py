"""Keep a user's own init across widths: rescale, don't redraw (microsoft/mup's way).

`rules.parametrize(..., init="keep")` (the default) leaves a model at the base shape exactly
as its author initialised it, and at any other shape gives each parameter the author's base
init times the rule's width factor for it:

    factor = (the rule's init std here) / (the rule's init std at the base shape),

both with the rule's forward multiplier folded in (abc symmetry, `fold_multiplier`), so for
`mup` a hidden weight gets 1/sqrt(n), a readout 1/n, an embedding or bias 1; for `ntk` (N(0,1)
weights times sqrt(g/fan_in)) the folded std is sqrt(g/fan_in), so hidden weights and the
readout get 1/sqrt(n). Gains cancel in the ratio: the author's choice of std is kept, only its
change with width is the rule's.

The author's base init is read off the base model's values (built for real; it is small):
each parameter's RMS about its constant (0, or 1 for norm scales) at the base, against the
same at this width, undoes whatever width law the author's initializer has (flax's lecun
init already shrinks as 1/sqrt(fan_in); GPT-2's N(0, 0.02) does not). A parameter whose shape
is its base shape keeps its values bit for bit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp

from rules.algebra import Rule
from rules.meta import LayerMeta
from rules.validation import RuleError

# zero=("readout", "query"): microsoft/mup's recommended zero inits, by role and by name.
ZERO_WORDS = ("readout", "query")
# The module that projects attention queries, as Flax (query), Hugging Face (q_proj),
# Llama (wq) and small codebases (q) name it.
QUERY_NAMES = ("query", "q_proj", "wq", "q")


def at_base(meta: LayerMeta) -> LayerMeta:
    """The same parameter at the base shape (base fans, base depth)."""
    fields: dict = {"depth": meta.base_depth}
    if meta.base_fan_in is not None:
        fields["fan_in"] = meta.base_fan_in
    if meta.base_fan_out is not None:
        fields["fan_out"] = meta.base_fan_out
    if meta.num_blocks is not None and meta.num_blocks == meta.depth:
        fields["num_blocks"] = meta.base_depth  # foreign branches count blocks as depth
    return dataclasses.replace(meta, **fields)


def folded_std(rule: Rule, meta: LayerMeta) -> float:
    """The rule's init std times its forward multiplier (what a plain forward pass sees)."""
    scales = rule(meta)
    return abs(scales.init_std * scales.multiplier)


def init_factor(rule: Rule, meta: LayerMeta) -> float:
    """The rule's init std at `meta`'s shape over its init std at the base shape.

    1 where the rule draws no random values at either (biases and norms under he_init);
    RuleError where it draws them only away from the base (nothing to rescale)."""
    here, base = folded_std(rule, meta), folded_std(rule, at_base(meta))
    if base == 0:
        if here == 0:
            return 1.0
        raise RuleError(
            f"{meta.path or meta.role}: rule {rule.name!r} draws it with std {here:.3g} at this "
            "width and 0 at the base, so there is no base init to rescale; use init='rule'"
        )
    return here / base


def init_factors(rule: Rule, metas: Any) -> Any:
    """A tree of `init_factor`s like `metas`."""
    return jax.tree.map(lambda m: init_factor(rule, m), metas, is_leaf=_is_meta)


def _is_meta(x: Any) -> bool:
    return isinstance(x, LayerMeta)


def _center(meta: LayerMeta) -> float:
    return 1.0 if meta.role == "norm" else 0.0


# One compiled program per shape (center and ratio are arguments): eager jnp would compile
# each of the small ops on its own for every new shape, dozens of compilations per model.
@jax.jit
def _rms_of(x: jax.Array, center: jax.Array) -> jax.Array:
    wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jnp.sqrt(jnp.mean(jnp.square(wide - center)))


@jax.jit
def _affine(x: jax.Array, center: jax.Array, ratio: jax.Array) -> jax.Array:
    wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return (center + (wide - center) * ratio).astype(x.dtype)


def _rms(x: Any, center: float) -> float:
    return float(_rms_of(jnp.asarray(x), center))


def is_abstract(x: Any) -> bool:
    """A shape without values (jax.eval_shape, nnx.eval_shape)."""
    return isinstance(x, jax.ShapeDtypeStruct)


def keep_values(values: Any, base_values: Any, metas: Any, factors: Any) -> Any:
    """Each value scaled so that its RMS about its constant is the base model's times the
    factor; a parameter with its base shape and factor 1 is returned as it is."""
    leaves, treedef = jax.tree_util.tree_flatten(values)
    base_leaves = jax.tree.leaves(base_values)
    meta_leaves = jax.tree.leaves(metas, is_leaf=_is_meta)
    factor_leaves = jax.tree.leaves(factors)
    out = []
    for value, base, meta, factor in zip(leaves, base_leaves, meta_leaves, factor_leaves):
        if is_abstract(value) or (jnp.shape(value) == jnp.shape(base) and factor == 1.0):
            out.append(value)
            continue
        if is_abstract(base):
            raise RuleError(
                f"{meta.path}: init='keep' rescales your own init from the base model's values, "
                "and the base is abstract; build the base model for real (it is small: "
                "Model(base_width, rngs=...) or model.init(...)['params'], not eval_shape), "
                "or pass init='rule' to draw by the rule's own formula"
            )
        center = _center(meta)
        here = _rms(value, center)
        ratio = factor * (_rms(base, center) / here if here > 0 else 1.0)
        out.append(_affine(jnp.asarray(value), center, ratio))
    return jax.tree_util.tree_unflatten(treedef, out)


def zero_mask(metas: Any, zero: str | Iterable[str]) -> Any:
    """A tree of bools: which parameters `zero` asks to start at zero.

    "readout": the readout weights (role output); "query": the kernels of modules named
    query, q_proj, wq or q (flax's attention, Hugging Face, Llama); anything else is a regex
    searched in 'a/b/kernel' paths. RuleError for a choice that matches no parameter."""
    choices = (zero,) if isinstance(zero, str) else tuple(zero)
    flat = jax.tree.leaves(metas, is_leaf=_is_meta)
    chosen = [False] * len(flat)
    for choice in choices:
        hits = [i for i, m in enumerate(flat) if _selects(choice, m)]
        if not hits:
            raise RuleError(_no_match(choice))
        for i in hits:
            chosen[i] = True
    return jax.tree_util.tree_unflatten(jax.tree.structure(metas, is_leaf=_is_meta), chosen)


def _selects(choice: str, meta: LayerMeta) -> bool:
    if choice == "readout":
        return meta.role == "output"
    if choice == "query":
        parts = meta.path.split("/")
        return meta.is_weight and len(parts) > 1 and parts[-2] in QUERY_NAMES
    return re.search(choice, meta.path) is not None


def _no_match(choice: str) -> str:
    if choice == "readout":
        return (
            "zero='readout': no parameter is a readout (role output); a tied readout is the "
            "embedding table, which must stay random: use rules.tied_readout_multiplier instead"
        )
    if choice == "query":
        return (
            f"zero='query': no kernel sits in a module named {', '.join(QUERY_NAMES)}; name "
            "your query projection's path with a regex instead, e.g. zero=(r'attn/q/kernel',) "
            "(a fused qkv kernel cannot be zeroed by name: zero its query slice yourself)"
        )
    return f"zero={choice!r}: the regex matches no parameter path"


def zero_values(values: Any, mask: Any) -> Any:
    """Zeros where `mask` is True (abstract leaves stay abstract)."""

    def one(value, chosen):
        return jnp.zeros_like(value) if chosen and not is_abstract(value) else value

    return jax.tree.map(one, values, mask)


def tied_readout_multiplier(
    rule: Rule, width: int, base_width: int | None, *, optimizer: str = "adam"
) -> float:
    """The factor on logits = h @ table^T of a tied readout, for a model whose own tied
    logits carry no factor at the base width.

    The table is trained as an input (embedding) and stays at the author's std; as a readout
    it must act like the rule's output layer, so the logits take the ratio of the two width
    factors: base_width / width under `mup` (as microsoft/mup's MuSharedReadout),
    sqrt(base_width / width) under `sp` and `ntk`, 1 at the base width."""
    if base_width is None:
        return 1.0
    family = "adam" if optimizer not in ("sgd", "momentum") else "sgd"
    common = dict(optimizer=family, gain=1.0)
    readout = LayerMeta(role="output", fan_in=width, fan_out=1, base_fan_in=base_width, **common)
    table = LayerMeta(role="input", fan_in=1, fan_out=width, base_fan_out=base_width, **common)
    return init_factor(rule, readout) / init_factor(rule, table)
