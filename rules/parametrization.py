"""`Parametrization`: what `rules.parametrize` decided for a model written without `rules`."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from rules.algebra import Rule
from rules.meta import LayerMeta, Scales
from rules.muon_family import update_text


def _is_meta(x: Any) -> bool:
    return isinstance(x, LayerMeta)


def _is_scales(x: Any) -> bool:
    return isinstance(x, Scales)


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
    # Linen: the params tree to train (boxes kept); None for an NNX model, which holds its own.
    params: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def optimizer(self) -> str:
        """The optimizer family ("sgd" | "adam") the LR multipliers are for."""
        return jax.tree.leaves(self.metas, is_leaf=_is_meta)[0].optimizer

    @property
    def residual_multiplier(self) -> float:
        """The factor on each residual branch's output, applied by the user's block."""
        from rules.residual import residual_multiplier

        return residual_multiplier(self.rule, self.depth, self.base_depth, optimizer=self.optimizer)

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
