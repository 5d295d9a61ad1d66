"""What residual models tell a rule: block counts, and the multiplier where a branch joins."""

from __future__ import annotations

from rules import Rule
from rules.residual import branch_fields  # the fields of a layer in a branch: one definition
from zoo.config import ModelConfig

__all__ = ["branch_fields", "branch_multiplier"]


def branch_multiplier(config: ModelConfig, rule: Rule, width: int, fields: dict) -> float:
    """The rule's multiplier on a branch output of `width` features (role "branch")."""
    meta = config.meta(
        "branch", width, width, scales_in=True, scales_out=True, gain=config.gain, **fields
    )
    return rule(meta).multiplier
