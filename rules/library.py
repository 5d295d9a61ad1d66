"""The named parametrizations. Each is a short pipeline; see DESIGN/WORKSPACE for sources."""

from __future__ import annotations

from rules.algebra import compose
from rules.registry import register
from rules.transforms import (
    depth_lr,
    he_init,
    mean_field_readout_init,
    mup_lr,
    mup_readout_init,
    ntk_weights,
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
        name="mup",
        description="muP (Tensor Programs V, table 3); equals sp at the base width",
    )
)
mean_field = register(
    compose(
        he_init,
        mean_field_readout_init,
        mup_lr,
        depth_lr(-1.5),
        name="mean_field",
        description="Jelassi et al. 2023: He hidden, 1/fan_in readout, hidden LR x (L/L0)^-3/2",
    )
)
