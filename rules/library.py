"""The named parametrizations, each a short pipeline of transforms.

Sources: sp/ntk (standard, Jacot et al.), mup (Yang & Hu, Tensor Programs V, table 3),
mean_field (Jelassi et al. 2023), depth_mup (Yang et al., Tensor Programs VI; Bordelon et
al. 2023), completep (Dey et al. 2025), am_mup (arithmetic-mean muP, arXiv 2510.04327).
"""

from __future__ import annotations

from rules.algebra import Rule, compose
from rules.muon_family import muon_mode
from rules.registry import register
from rules.transforms import (
    branch_lr,
    branch_multiplier,
    completep_adam_eps,
    depth_lr,
    global_depth_lr,
    he_init,
    mean_field_readout_init,
    mup_attention,
    mup_lr,
    mup_readout_init,
    network_depth_lr,
    ntk_weights,
    residual_he_init,
    residual_he_init_last,
)

sp = register(
    compose(he_init, name="sp", description="standard: He fan-in init, multiplier 1, one LR")
)
ntk = register(
    compose(
        ntk_weights,
        name="ntk",
        description="NTK: N(0,1) weights, forward multiplier sqrt(g/fan_in)",
    )
)
mup = register(
    compose(
        he_init,
        mup_readout_init,
        mup_lr,
        mup_attention,
        name="mup",
        description="muP (Tensor Programs V, table 3); equals sp at the base width",
        requires={"base_width"},
    )
)
mup_naive_spectral = register(
    compose(
        mup,
        muon_mode("spectral"),
        name="mup_naive_spectral",
        description="mup, but Muon matrices' steps x sqrt(max(fan_in, fan_out)) relative to "
        "the base (Megatron-LM's naive `spectral` mode; breaks width invariance)",
    )
)
mean_field = register(
    compose(
        he_init,
        mean_field_readout_init,
        mup_lr,
        mup_attention,
        depth_lr(-1.5),
        name="mean_field",
        description="Jelassi et al. 2023: He hidden, 1/fan_in readout, hidden LR x (L/L0)^-3/2",
        requires={"base_width"},
    )
)


def completep_alpha(alpha: float = 1.0, name: str | None = None) -> Rule:
    """muP in width plus the alpha-parametrization in depth (branch multiplier (L/L0)^-alpha)."""
    return compose(
        mup,
        branch_multiplier(alpha),
        branch_lr(alpha),
        completep_adam_eps(alpha),
        name=name or f"completep_alpha{alpha:g}",
        description=f"Dey et al. 2025 with alpha={alpha:g}: branches x (L/L0)^-{alpha:g}, "
        "Adam LR x (L/L0)^(alpha-1), eps x (L/L0)^-alpha / n",
        requires={"residual"},
    )


completep = register(completep_alpha(1.0, name="completep"))
depth_mup = register(
    compose(
        mup,
        branch_multiplier(0.5),
        branch_lr(0.5),
        name="depth_mup",
        description="Tensor Programs VI: branches x (L/L0)^-1/2, Adam branch LR x (L/L0)^-1/2",
        requires={"residual"},
    )
)
am_mup = register(
    compose(
        he_init,
        residual_he_init,
        global_depth_lr(-1.5),
        name="am_mup",
        description="arithmetic-mean muP: branch init Var g/(K fan_in), one LR x (L/L0)^-3/2",
    )
)

# Readings of AM-muP for residual models (WORKSPACE.md, "The ResNet depth rule"): which
# branch layers the residual-aware init scales, and which depth L the LR factor counts.
am_mup_last = register(
    compose(
        he_init,
        residual_he_init_last,
        global_depth_lr(-1.5),
        name="am_mup_last",
        description="AM-muP with only each branch's last layer at Var g/(K fan_in) "
        "(branch output variance ~ 1/K), one LR x (K/K0)^-3/2",
    )
)
am_mup_network = register(
    compose(
        he_init,
        residual_he_init,
        network_depth_lr(-1.5),
        name="am_mup_network",
        description="AM-muP counting L = 2K + 2 layers (ResNet-(6n+2)) in the LR factor",
    )
)
residual_he = register(
    compose(
        he_init,
        residual_he_init,
        name="residual_he",
        description="AM-muP's residual-aware init, no depth LR factor (the paper's ResNet law "
        "with L the minimal depth, which stays fixed as blocks are added)",
    )
)
residual_he_last = register(
    compose(
        he_init,
        residual_he_init_last,
        name="residual_he_last",
        description="branch's last layer at Var g/(K fan_in), no depth LR factor",
    )
)
