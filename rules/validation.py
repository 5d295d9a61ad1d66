"""Does a rule fit a model? One clear sentence when it does not."""

from __future__ import annotations

from collections.abc import Iterable

from rules.algebra import Rule
from rules.meta import LayerMeta


class RuleError(ValueError):
    """A rule cannot serve a model (train.py reports it as a bad --rule)."""


def check(rule: Rule, metas: Iterable[LayerMeta]) -> None:
    """Raise RuleError if the model described by `metas` lacks what `rule.requires`."""
    metas = list(metas)
    if "residual" in rule.requires and not any(m.in_residual_branch for m in metas):
        raise RuleError(
            f"rule {rule.name!r} scales residual branches, and this model has none; "
            "use a residual model (e.g. resmlp, resnet) or a rule without branch multipliers"
        )
    if "base_width" in rule.requires and not any(
        m.base_fan_in is not None or m.base_fan_out is not None for m in metas
    ):
        raise RuleError(
            f"rule {rule.name!r} scales with width, and no dimension of this model has a base "
            "width; give a base width (or a base model to compare shapes with)"
        )
