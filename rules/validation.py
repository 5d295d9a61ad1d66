"""Does a rule fit a model? One clear sentence when it does not."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from rules.algebra import Rule
from rules.meta import LayerMeta

FLOAT32_MAX = 3.4028234663852886e38


class RuleError(ValueError):
    """A rule cannot serve a model (train.py reports it as a bad --rule)."""


def check(rule: Rule, metas: Iterable[LayerMeta]) -> None:
    """Raise RuleError if the model described by `metas` lacks what `rule.requires`, or the
    rule gives one of its layers a negative, NaN or infinite scale."""
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
    check_scales(rule, metas)
    if any(m.optimizer == "muon" for m in metas):
        from rules.muon_family import stated_problem

        problem = stated_problem(rule, metas)
        if problem:
            raise RuleError(problem)


def check_scales(rule: Rule, metas: Iterable[LayerMeta]) -> None:
    """RuleError naming the rule, the parameter and the layer role of the first scale that is
    negative, NaN or infinite (such a rule would train by gradient ascent or diverge)."""
    for meta in metas:
        try:
            scales = rule(meta)
        except Exception as e:  # a user's transform: its failure is theirs to fix
            raise RuleError(
                f"rule {rule.name!r} fails on the {meta.role} layer "
                f"(fan_in {meta.fan_in}, fan_out {meta.fan_out}): {type(e).__name__}: {e}"
            ) from None
        for field in dataclasses.fields(scales):
            value = getattr(scales, field.name)
            try:  # within float32's range too: a larger value is inf once on the device
                good = math.isfinite(value) and 0 <= value <= FLOAT32_MAX
            except TypeError:
                good = False
            if not good:
                raise RuleError(
                    f"rule {rule.name!r} gives the {meta.role} layer "
                    f"(fan_in {meta.fan_in}, fan_out {meta.fan_out}) {field.name}={value!r}; "
                    f"scales must be finite, >= 0 and at most {FLOAT32_MAX:.4g} (float32)"
                )
