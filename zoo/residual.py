"""What residual models tell a rule: block counts, and the multiplier where a branch joins."""

from __future__ import annotations

from rules import Rule
from zoo.config import ModelConfig


def branch_fields(num_blocks: int, base_blocks: int, block: int | None = None) -> dict:
    """LayerMeta overrides for a layer inside residual block `block` of `num_blocks`.

    Depth rules see depth = K blocks and base_depth = K0 blocks (not layers). Stacked,
    scanned blocks share one set of scales, so their `block` is None.
    """
    return dict(
        depth=num_blocks,
        base_depth=base_blocks,
        num_blocks=num_blocks,
        block=block,
        in_residual_branch=True,
    )


def branch_multiplier(config: ModelConfig, rule: Rule, width: int, fields: dict) -> float:
    """The rule's multiplier on a branch output of `width` features (role "branch")."""
    meta = config.meta(
        "branch", width, width, scales_in=True, scales_out=True, gain=config.gain, **fields
    )
    return rule(meta).multiplier
