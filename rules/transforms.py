"""The small transforms that named rules are built from.

Width multipliers are relative to the base shape (`LayerMeta.fan_in_multiplier`,
`fan_out_multiplier`), so a width rule equals its plain rule at the base width.
"""

from __future__ import annotations

import math

from rules import muon_family
from rules.algebra import Transform, named
from rules.meta import LayerMeta, Scales

VECTOR_LIKE = ("input", "bias", "norm")  # exactly one dimension (fan_out) grows with width


def he_init(meta: LayerMeta, scales: Scales) -> Scales:
    """Weights ~ N(0, gain / fan_in); biases and norm scales at their constant default."""
    if meta.is_weight:
        return scales.replace(init_std=math.sqrt(meta.gain / meta.fan_in))
    return scales.replace(init_std=0.0)


def ntk_weights(meta: LayerMeta, scales: Scales) -> Scales:
    """NTK parametrization: weights ~ N(0, 1) times a forward multiplier sqrt(gain / fan_in)."""
    if meta.is_weight:
        return scales.replace(init_std=1.0, multiplier=math.sqrt(meta.gain / meta.fan_in))
    return scales.replace(init_std=0.0)


def mup_readout_init(meta: LayerMeta, scales: Scales) -> Scales:
    """Readout std shrinks by sqrt(n) more than fan-in init, so std ~ 1/width (TP V)."""
    if meta.role == "output":
        return scales.replace(init_std=scales.init_std / math.sqrt(meta.fan_in_multiplier))
    return scales


def mup_attention(meta: LayerMeta, scales: Scales) -> Scales:
    """Attention logits x sqrt(d0 / d): 1/sqrt(d) becomes sqrt(d0)/d, muP's 1/d (TP V) that
    equals the standard 1/sqrt(d) at the base head_dim d0."""
    if meta.role == "attention":
        return scales.replace(multiplier=scales.multiplier / math.sqrt(meta.fan_in_multiplier))
    return scales


def mean_field_readout_init(meta: LayerMeta, scales: Scales) -> Scales:
    """Readout std = 1 / fan_in (variance 1/n^2, Jelassi et al. 2023); absolute, not relative."""
    if meta.role == "output":
        return scales.replace(init_std=1.0 / meta.fan_in)
    return scales


def mup_lr(meta: LayerMeta, scales: Scales) -> Scales:
    """Per-layer LR multipliers of muP (Tensor Programs V, table 3), relative to the base width.

    SGD:  input weights, biases, norms x n;  hidden x 1;    output x 1/n.
    Adam: input weights, biases, norms x 1;  hidden x 1/n;  output x 1/n.
    Muon: hidden matrices by the spectral condition, sqrt(fan_out / fan_in) relative to
    the base (rules/muon_family.py); its other parameters go to Adam and take Adam's column.
    """
    if muon_family.takes(meta):
        return scales.replace(lr=scales.lr * muon_family.spectral_condition(meta))
    if meta.optimizer == "sgd":
        if meta.role in VECTOR_LIKE:
            return scales.replace(lr=scales.lr * meta.fan_out_multiplier)
        if meta.role == "output":
            return scales.replace(lr=scales.lr / meta.fan_in_multiplier)
        return scales
    if meta.role in ("hidden", "output"):
        return scales.replace(lr=scales.lr / meta.fan_in_multiplier)
    return scales


def depth_lr(alpha: float, roles: tuple[str, ...] = ("hidden",)) -> Transform:
    """LR of `roles` times (L / L0)^alpha; Jelassi et al. give alpha = -3/2 for ReLU MLPs."""

    @named(f"depth_lr({alpha:g})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        if meta.role in roles:
            return scales.replace(lr=scales.lr * meta.depth_multiplier**alpha)
        return scales

    return transform


def _branch_depth_factor(meta: LayerMeta, power: float) -> float:
    return meta.depth_multiplier**power if meta.in_residual_branch else 1.0


def branch_multiplier(alpha: float) -> Transform:
    """Residual branch output x (L/L0)^-alpha: 1/2 is depth-muP (TP VI), 1 is CompleteP."""

    @named(f"branch_multiplier({alpha:g})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        if meta.role == "branch":
            return scales.replace(multiplier=scales.multiplier * meta.depth_multiplier**-alpha)
        return scales

    return transform


def branch_lr(alpha: float) -> Transform:
    """LR of residual-branch parameters for branch multiplier (L/L0)^-alpha.

    Adam: x (L/L0)^(alpha - 1) (Dey et al. 2025, table 1; 1/sqrt(L) for alpha = 1/2 as in
    TP VI). SGD: x (L/L0)^(2 alpha - 1), so that each block still moves the residual
    stream by Theta(1/L) (the multiplier enters both the gradient and the forward pass).
    Muon takes Adam's exponent: its step, like Adam's, does not scale with the gradient.
    """

    @named(f"branch_lr({alpha:g})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        power = 2 * alpha - 1 if meta.optimizer == "sgd" else alpha - 1
        return scales.replace(lr=scales.lr * _branch_depth_factor(meta, power))

    return transform


def completep_adam_eps(alpha: float) -> Transform:
    """Adam epsilon of hidden/branch parameters x 1/n x (L/L0)^-alpha (Dey et al. 2025)."""

    @named(f"completep_adam_eps({alpha:g})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        if muon_family.takes(meta):
            return scales  # Muon has no epsilon
        eps = scales.adam_eps * _branch_depth_factor(meta, -alpha)
        if meta.role == "hidden":
            eps /= meta.fan_in_multiplier
        return scales.replace(adam_eps=eps)

    return transform


def residual_he_init(meta: LayerMeta, scales: Scales) -> Scales:
    """Branch weights ~ N(0, g / (K fan_in)) with K residual blocks (AM-muP's residual-aware He)."""
    if meta.is_weight and meta.in_residual_branch and meta.num_blocks:
        return scales.replace(init_std=scales.init_std / math.sqrt(meta.num_blocks))
    return scales


def residual_he_init_last(meta: LayerMeta, scales: Scales) -> Scales:
    """Only a branch's last layer ~ N(0, g / (K fan_in)): the branch output's variance then
    goes as 1/K whatever the number of layers in the branch (dividing every branch layer by
    K makes a two-layer branch's output go as 1/K^2). Layers whose position in the branch
    is unknown are treated as the last (one-layer branches)."""
    last = meta.last_in_branch or meta.branch_layers is None
    if meta.is_weight and meta.in_residual_branch and meta.num_blocks and last:
        return scales.replace(init_std=scales.init_std / math.sqrt(meta.num_blocks))
    return scales


def network_depth_lr(alpha: float, layers_per_block: int = 2, extra_layers: int = 2) -> Transform:
    """One LR for every parameter x (L/L0)^alpha with L the network's layer count as He et
    al. count a ResNet-(6n+2): L = layers_per_block x K + extra_layers, K = `meta.depth`
    residual blocks (every layer of the zoo's residual models carries the block counts).
    Counting blocks (`global_depth_lr`) or branch layers (2K) gives one same ratio K/K0."""

    @named(f"network_depth_lr({alpha:g})")
    def transform(meta: LayerMeta, scales: Scales) -> Scales:
        depth = layers_per_block * meta.depth + extra_layers
        base = layers_per_block * meta.base_depth + extra_layers
        return scales.replace(lr=scales.lr * (depth / base) ** alpha)

    return transform


def global_depth_lr(alpha: float) -> Transform:
    """One LR for every parameter, x (L/L0)^alpha (AM-muP uses alpha = -3/2)."""
    return named(f"global_depth_lr({alpha:g})")(
        depth_lr(alpha, roles=("input", "hidden", "output", "bias", "norm"))
    )
