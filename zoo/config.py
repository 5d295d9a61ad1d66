"""What every model in the zoo is built from: its shape, and how to describe a layer to a rule."""

from __future__ import annotations

import dataclasses
import math

import rules
from rules.meta import LayerMeta, Role

NORMALIZATIONS = ("none", "batch", "layer", "rms")
POSITIONS = ("learned", "rotary")  # transformers: position embeddings
POOLINGS = ("cls", "mean")  # vit: class token or mean over patches
PADDINGS = ("SAME", "CIRCULAR")
CONV_IMPLEMENTATIONS = ("im2col", "lax")  # as rules.Conv's `implementation`


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and options of a model; `base_*` = None means "same as the model" (no scaling)."""

    input_shape: tuple[int, ...]
    num_classes: int
    width: int = 256
    depth: int = 3
    base_width: int | None = None
    base_depth: int | None = None
    activation: str = "relu"
    use_bias: bool = True
    optimizer: str = "adam"  # optimizer family the rule scales LRs for: "sgd" or "adam"
    normalization: str = "none"  # NORMALIZATIONS: "none", "batch", "layer" or "rms" (no bias)
    dropout: float = 0.0  # rate, after activations (inside residual branches for ResNets)
    kernel_size: int = 3  # convolutions: kernel extent along every spatial axis
    padding: str = "SAME"  # convolutions: "SAME" (zeros) or "CIRCULAR"
    conv_implementation: str = "im2col"  # convolutions: "im2col" or "lax" (same numbers)
    scan_blocks: bool = True  # run identical blocks with nnx.scan (False: a Python loop)
    # --- transformers (lm, vit) ---
    heads: int = 4  # attention heads; head_dim = width / heads grows with width
    head_dim: int = 0  # > 0: fixed head size instead, heads = width / head_dim grow
    mlp_ratio: int = 4  # MLP hidden units = mlp_ratio x width
    positions: str = "learned"  # "learned" embeddings or "rotary" (RoPE on q and k)
    tied: bool = False  # lm: readout shares the token embedding
    pooling: str = "cls"  # vit: "cls" token or "mean" over patches
    patch_size: int = 0  # vit: patch side (0: the image in a 4x4 grid, a sequence in 8)

    def __post_init__(self):
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {self.width}, {self.depth}")
        if self.base_width is not None and not 1 <= self.base_width <= self.width:
            raise ValueError(
                f"base_width must be in [1, width={self.width}], got {self.base_width}"
            )
        if self.base_depth is not None and not 1 <= self.base_depth <= self.depth:
            raise ValueError(
                f"base_depth must be in [1, depth={self.depth}], got {self.base_depth}"
            )
        rules.gain(self.activation)  # raises for an unknown activation
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {self.normalization!r}; "
                f"choose one of: {', '.join(NORMALIZATIONS)}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; choose one of: SAME, CIRCULAR")
        if self.conv_implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(
                f"unknown conv_implementation {self.conv_implementation!r}; choose im2col or lax"
            )
        if self.positions not in POSITIONS:
            raise ValueError(f"unknown positions {self.positions!r}; choose learned or rotary")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose cls or mean")
        if self.mlp_ratio < 1 or self.heads < 1 or self.head_dim < 0 or self.patch_size < 0:
            raise ValueError("mlp_ratio and heads must be >= 1, head_dim and patch_size >= 0")

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def gain(self) -> float:
        """Gain of inputs that passed through the activation."""
        return rules.gain(self.activation)

    def base_of(self, size: int) -> int:
        """The base-width counterpart of a dimension `size` that scales with width."""
        return size * (self.base_width or self.width) // self.width

    def meta(
        self,
        role: Role,
        fan_in: int,
        fan_out: int,
        *,
        scales_in: bool,
        scales_out: bool,
        gain: float,
        **extra,
    ) -> LayerMeta:
        """Layer metadata; `scales_in/out` say which dimensions grow with width.

        `extra` sets or overrides other LayerMeta fields (e.g. residual models pass
        depth/base_depth as block counts, block, num_blocks, in_residual_branch).
        """
        fields = dict(
            role=role,
            fan_in=fan_in,
            fan_out=fan_out,
            base_fan_in=self.base_of(fan_in) if scales_in else None,
            base_fan_out=self.base_of(fan_out) if scales_out else None,
            depth=self.depth,
            base_depth=self.base_depth or self.depth,
            gain=gain,
            optimizer=self.optimizer,
        )
        return LayerMeta(**(fields | extra))
