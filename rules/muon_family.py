"""The "muon" optimizer family: which parameters Muon updates, and their LR multipliers.

Muon (momentum orthogonalised by Newton-Schulz) takes every **hidden** weight: a tensor
of role "hidden" whose input and output axes both read or write the model's width. Its
update O has spectral norm ~1 whatever the gradient's scale. Input and output layers,
embeddings, biases and norms go to Adam and follow the rule's Adam column unchanged.

What a Muon matrix's update is (per step, lr the global learning rate):

    dW = lr x base x s.lr x O,    base = 0.2 sqrt(max(fan_in_0, fan_out_0))

- `base` (the same under every rule) is Moonlight's / optax's `consistent_rms` 0.2
  sqrt(max(d_in, d_out)) evaluated at the **base shape** (fans / width multipliers): it
  gives a Muon update the RMS of an AdamW update at the base shape, so one global LR serves
  both halves of the split there. Frozen at the base, it never changes with width.
- `s.lr` is the rule's LR multiplier, relative to the base shape (1 there), so every width
  rule equals its plain rule at the base width (muP == SP). For `mup` it is the spectral
  condition (Yang, Simon & Bernstein 2023): ||dW|| ~ sqrt(fan_out / fan_in) x a width-free
  LR, i.e. s.lr = sqrt(fan_out_multiplier / fan_in_multiplier); 1 for a hidden matrix whose
  two sides grow together. No Adam LR factor (1/n) and no Adam epsilon factor is applied to
  a Muon matrix: that is the double scaling of Megatron-LM's first muP-for-Muon version.
- The naive `spectral` mode (Megatron-LM's, sqrt(max(fan_in, fan_out)), relative to the
  base shape here) is `muon_mode("spectral")`, registered as the rule `mup_naive_spectral`
  to measure against: it grows a square hidden matrix's step by sqrt(n).

Depth: residual-branch LRs follow Adam's exponent (L/L0)^(alpha - 1) (`branch_lr`): a
Muon step, like Adam's, does not scale with the gradient, so the derivation of Dey et al.
(2025, each block moves the stream by Theta(1/L)) carries over unchanged.

No JAX here (the rule core stays cheap to import); the optax side, and how a kernel's
shape is read as a matrix, are rules/muon.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from rules.algebra import Rule, Transform, named
from rules.meta import LayerMeta, Scales

CONSISTENT_RMS = 0.2  # Moonlight (Liu et al. 2025): a Muon update with AdamW's RMS
MODES = ("spectral_condition", "spectral")


def takes(meta: LayerMeta) -> bool:
    """Muon updates this parameter (hidden weights); Adam updates every other one."""
    return meta.optimizer == "muon" and meta.role == "hidden"


def spectral_condition(meta: LayerMeta) -> float:
    """sqrt(fan_out / fan_in) relative to the base shape (1 at the base width)."""
    return math.sqrt(meta.fan_out_multiplier / meta.fan_in_multiplier)


def naive_spectral(meta: LayerMeta) -> float:
    """sqrt(max(fan_in, fan_out)) relative to the base shape: sqrt(n) for a square matrix."""
    base_in = meta.fan_in / meta.fan_in_multiplier
    base_out = meta.fan_out / meta.fan_out_multiplier
    return math.sqrt(max(meta.fan_in, meta.fan_out) / max(base_in, base_out))


def base_factor(meta: LayerMeta, rms: float = CONSISTENT_RMS) -> float:
    """0.2 sqrt(max(fan_in, fan_out)) at the base shape: the Muon step's width-free scale."""
    base_in = meta.fan_in / meta.fan_in_multiplier
    base_out = meta.fan_out / meta.fan_out_multiplier
    return rms * math.sqrt(max(base_in, base_out))


_MODE_FACTORS = {"spectral_condition": spectral_condition, "spectral": naive_spectral}


def muon_mode(mode: str) -> Transform:
    """Muon matrices' width factor `mode` in place of the spectral condition `mup_lr` gives
    (apply after `mup_lr`). "spectral": Megatron-LM's sqrt(max(fan_in, fan_out)) mode, which
    breaks width invariance; kept to measure against."""
    if mode not in _MODE_FACTORS:
        raise ValueError(f"muon mode must be one of {', '.join(MODES)}, got {mode!r}")

    @named(f"muon_mode({mode})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        if not takes(meta):
            return scales
        factor = _MODE_FACTORS[mode](meta) / spectral_condition(meta)
        return scales.replace(lr=scales.lr * factor)

    return transform


@dataclasses.dataclass(frozen=True)
class MuonScales(Scales):
    """A parameter's `Scales` under the muon family, with how the optimizer sees it.

    matrix: None (Adam updates it) or (input axes, output axes), negative indices of the
      kernel; every other axis (stacked blocks) is a batch axis, orthogonalised slice by slice.
    base: `base_factor` for Muon matrices, 1 for Adam's parameters.
    """

    matrix: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    base: float = 1.0


def _wider(meta: LayerMeta, factor: int = 4) -> LayerMeta:
    """The same layer `factor` times wider along the dimensions that grow."""
    return dataclasses.replace(
        meta,
        fan_in=meta.fan_in * factor if meta.base_fan_in else meta.fan_in,
        fan_out=meta.fan_out * factor if meta.base_fan_out else meta.fan_out,
    )


def stated_problem(rule: Rule, metas: Iterable[LayerMeta]) -> str | None:
    """Why `rule` cannot be stated for a Muon matrix, or None: it gives the matrix its Adam
    width scaling (a rule with an SGD and an Adam column and no Muon one, which would scale
    Muon's already normalised step twice), or an Adam epsilon factor (Muon has none).
    `rules.check` raises it as a RuleError. Also when no parameter is a hidden matrix."""
    metas = list(metas)
    if not any(takes(m) for m in metas):
        return (
            "Muon updates hidden matrices and this model has none (every weight reads the "
            "input or writes the output), so Muon would update nothing; use adam"
        )
    for meta in metas:
        if not takes(meta):
            continue
        wide = _wider(meta)
        ratio = {}
        for family in ("sgd", "adam", "muon"):
            here = rule(dataclasses.replace(meta, optimizer=family)).lr
            there = rule(dataclasses.replace(wide, optimizer=family)).lr
            ratio[family] = there / here if here else float("nan")
        if _close(ratio["muon"], ratio["adam"]) and not _close(ratio["adam"], ratio["sgd"]):
            return (
                f"rule {rule.name!r} cannot be stated for Muon: it gives the Muon-updated "
                f"{meta.role} layer {meta.path or ''} its Adam width scaling (LR x"
                f"{ratio['adam']:.3g} for 4x width) and says nothing for Muon, whose step "
                "is already normalised (a second scaling); handle meta.optimizer == "
                "'muon' in its LR transform (see rules.muon_family) or use another optimizer"
            )
        eps = rule(meta).adam_eps
        if not _close(eps, 1.0):
            return (
                f"rule {rule.name!r} gives the Muon-updated {meta.role} layer "
                f"{meta.path or ''} an Adam epsilon multiplier {eps:.3g}; Muon has no "
                "epsilon, so the rule cannot be stated for Muon as written"
            )
    return None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def update_text(meta: LayerMeta | None) -> str:
    """`describe`'s "update" cell: the optimizer that updates the parameter ("muon x1.6":
    Muon, with its base factor; the LR multiplier column comes on top)."""
    if meta is None:
        return "-"
    if takes(meta):
        return f"muon x{base_factor(meta):.3g}"
    return "sgd" if meta.optimizer == "sgd" else "adam"
