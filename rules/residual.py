"""Residual branches: the factor on a branch's output under a rule, computed here only.

Depth rules (depth_mup, completep, am_mup) see a residual block through two things: the
parameters inside its branch (`LayerMeta(in_residual_branch=True, num_blocks=K,
depth=K, base_depth=K0)`, what `branch_fields` returns) and the multiplier where the
branch joins the stream, `x + residual_multiplier(rule, K, K0) * branch(x)`. The rule
decides that multiplier for a pseudo-layer of role "branch" (the transform
`rules.branch_multiplier(alpha)` sets it); users' blocks, `Parametrization`s and the zoo's
blocks all read it from `residual_multiplier`.
"""

from __future__ import annotations

from rules.algebra import Rule
from rules.meta import LayerMeta


def branch_fields(num_blocks: int, base_blocks: int, block: int | None = None) -> dict:
    """LayerMeta fields of a parameter inside residual block `block` of `num_blocks`
    (depth rules count blocks, relative to `base_blocks`)."""
    return dict(
        depth=num_blocks,
        base_depth=base_blocks,
        num_blocks=num_blocks,
        block=block,
        in_residual_branch=True,
    )


def residual_multiplier(
    rule: Rule,
    num_blocks: int,
    base_blocks: int,
    width: int = 1,
    base_width: int | None = None,
    *,
    block: int | None = None,
    optimizer: str = "sgd",
    gain: float = 1.0,
) -> float:
    """The rule's factor on a residual branch's output (role "branch"): depth_mup
    (K/K0)^-1/2, completep (K/K0)^-1, 1 for rules without branch multipliers.

    `width`/`base_width`: the branch output's features (base None: does not grow); `block`,
    `optimizer` (family) and `gain`: the LayerMeta fields of the same names, for rules that
    read them (no registered rule does)."""
    meta = LayerMeta(
        role="branch",
        fan_in=width,
        fan_out=width,
        base_fan_in=base_width,
        base_fan_out=base_width,
        optimizer=optimizer,
        gain=gain,
        **branch_fields(num_blocks, base_blocks, block),
    )
    return rule(meta).multiplier
