"""Layer metadata by role: a role says which of a layer's dimensions grow with width.

    input   reads the data (fixed size, gain 1), writes `width`-sized features
    hidden  reads and writes width-sized features; its input gain is the activation's
            (`config.gain`), or 1 for a layer reading the residual stream or a norm
    output  the readout: reads width-sized features, writes the classes (fixed size)
    norm    a norm's scale or bias over `features` width-sized channels (fan_in 1)

Each function is `config.meta` with those choices filled in; `fields` set other LayerMeta
fields (a residual branch's `branch_fields`, `branch_index`, ...).
"""

from __future__ import annotations

from typing import Any

from rules.meta import LayerMeta
from zoo.config import ModelConfig


def input_meta(c: ModelConfig, fan_in: int, fan_out: int | None = None, **fields: Any) -> LayerMeta:
    """An input layer of `fan_in` data values (x kernel volume) -> `fan_out` (default width)."""
    width = c.width if fan_out is None else fan_out
    return c.meta("input", fan_in, width, scales_in=False, scales_out=True, gain=1.0, **fields)


def hidden_meta(
    c: ModelConfig, fan_in: int, fan_out: int, *, gain: float | None = None, **fields: Any
) -> LayerMeta:
    """A hidden layer; `gain` of its input defaults to the activation's."""
    gain = c.gain if gain is None else gain
    return c.meta("hidden", fan_in, fan_out, scales_in=True, scales_out=True, gain=gain, **fields)


def output_meta(c: ModelConfig, fan_in: int, *, gain: float | None = None) -> LayerMeta:
    """The readout of `fan_in` features into the classes; input gain as `hidden_meta`."""
    gain = c.gain if gain is None else gain
    return c.meta("output", fan_in, c.num_classes, scales_in=True, scales_out=False, gain=gain)


def norm_meta(c: ModelConfig, features: int, **fields: Any) -> LayerMeta:
    """A norm's scale (and bias) over `features` channels."""
    return c.meta("norm", 1, features, scales_in=False, scales_out=True, gain=1.0, **fields)
