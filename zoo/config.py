"""The one description of a model: its family, shape and options (`ModelConfig`), checked by
`ModelConfig.validate`, and how a layer of it is described to a rule.

train.py's model flags and the probes' model are this class: each field is the flag of the
same name (`name` is --model, `use_bias` is --bias), with its default here. `input_shape`,
`num_classes` and `optimizer` come from the dataset and the optimizer when the model is
built, not from the model's flags.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import rules
from rules.meta import LayerMeta, Role
from zoo.depths import check_depth

NORMALIZATIONS = ("none", "batch", "layer", "rms")
POSITIONS = ("learned", "rotary")  # transformers: position embeddings
POOLINGS = ("cls", "mean")  # vit: class token or mean over patches
# --padding word -> rules.Conv's padding (which a ModelConfig also accepts as is).
PADDINGS = {"zero": "SAME", "circular": "CIRCULAR"}
CONV_IMPLEMENTATIONS = ("im2col", "lax")  # as rules.Conv's `implementation`
TRANSFORMERS = ("lm", "vit")  # families with attention: heads, head_dim, positions


def value_error(flag: str, message: str) -> ValueError:
    """`ModelConfig.validate`'s error unless the caller passes its own (train.py: ConfigError)."""
    return ValueError(f"--{flag}: {message}")


def _choose(flag: str, value, choices, error: Callable[[str, str], Exception]) -> None:
    if value not in choices:
        raise error(flag, f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Family, shape and options of a model; `base_*` = None means "same as the model" (no
    scaling). Constructing one checks nothing: `validate()` does (and `zoo.build` calls it)."""

    input_shape: tuple[int, ...] = ()  # from the dataset when built
    num_classes: int = 0  # from the dataset when built (the readout's size)
    width: int = 256
    depth: int = 3
    base_width: int | None = None
    base_depth: int | None = None
    activation: str = "relu"
    use_bias: bool = True  # --bias
    optimizer: str = "adam"  # optimizer family the rule scales LRs for: "sgd" or "adam"
    normalization: str = "none"  # NORMALIZATIONS: "none", "batch", "layer" or "rms" (no bias)
    dropout: float = 0.0  # rate, after activations (inside residual branches for ResNets)
    kernel_size: int = 3  # convolutions: kernel extent along every spatial axis
    padding: str = "zero"  # convolutions: PADDINGS, "zero" ("SAME") or "circular" ("CIRCULAR")
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
    name: str = "mlp"  # the family (--model): one of zoo.names()

    def validate(self, error: Callable[[str, str], Exception] = value_error) -> ModelConfig:
        """`self`, or `error(flag, message)` raised for the first bad setting, in train.py's
        words (`--base_width: must be between 1 and --width=8, got 16`). The family `name`
        itself is zoo.build's to check (it knows the families)."""
        _choose("activation", self.activation, sorted(rules.GAINS), error)
        _choose("normalization", self.normalization, NORMALIZATIONS, error)
        if self.padding not in PADDINGS.values():  # rules.Conv's own words pass unmentioned
            _choose("padding", self.padding, tuple(PADDINGS), error)
        if not 0 <= self.dropout < 1:  # also rejects NaN
            raise error("dropout", f"must be in [0, 1), got {self.dropout}")
        self._validate_transformer(error)
        for flag in ("width", "depth", "kernel_size"):
            if getattr(self, flag) < 1:
                raise error(flag, f"must be >= 1, got {getattr(self, flag)}")
        for flag in ("depth", "base_depth"):
            try:
                if getattr(self, flag) is not None:
                    check_depth(self.name, getattr(self, flag))
            except ValueError as e:
                raise error(flag, str(e)) from None
        for base, size in (("base_width", "width"), ("base_depth", "depth")):
            value, limit = getattr(self, base), getattr(self, size)
            if value is not None and not 1 <= value <= limit:
                raise error(base, f"must be between 1 and --{size}={limit}, got {value}")
        if self.conv_implementation not in CONV_IMPLEMENTATIONS:
            raise error(
                "conv_implementation",
                f"unknown conv_implementation {self.conv_implementation!r}; choose im2col or lax",
            )
        return self

    def _validate_transformer(self, error: Callable[[str, str], Exception]) -> None:
        """The attention flags: ranges for every family, the shape rules for lm and vit."""
        _choose("positions", self.positions, POSITIONS, error)
        _choose("pooling", self.pooling, POOLINGS, error)
        for flag in ("heads", "mlp_ratio"):
            if getattr(self, flag) < 1:
                raise error(flag, f"must be >= 1, got {getattr(self, flag)}")
        for flag in ("head_dim", "patch_size"):
            if getattr(self, flag) < 0:
                raise error(flag, f"must be >= 0 (0: automatic), got {getattr(self, flag)}")
        if self.name not in TRANSFORMERS:
            return
        base = self.base_width or self.width
        size = self.head_dim or self.heads  # what the width and the base width must divide by
        if self.width % size or base % size:
            flag = "head_dim" if self.head_dim else "heads"
            raise error(
                flag,
                f"--width={self.width} and --base_width={base} must be multiples of "
                f"--{flag}={size}",
            )
        _, head_dim, _ = self.attention_shape()
        if self.positions == "rotary" and head_dim % 2:
            raise error("positions", f"rotary needs an even head size, got {head_dim}")

    def attention_shape(self) -> tuple[int, int, int | None]:
        """(heads, head_dim, base head_dim) of a transformer: `head_dim` > 0 fixes the head
        size (heads grow with width; base None: the size does not scale); otherwise `heads`
        is fixed and the head size width / heads grows (its base is base_width / heads)."""
        if self.head_dim:
            return self.width // self.head_dim, self.head_dim, None
        base = self.base_width or self.width
        return self.heads, self.width // self.heads, base // self.heads

    def at(self, width: int, depth: int) -> ModelConfig:
        """This model at another size, for the probes: a base larger than the size is capped
        at it (a smaller model is its own base)."""
        return dataclasses.replace(
            self,
            width=width,
            depth=depth,
            base_width=min(self.base_width or width, width),
            base_depth=min(self.base_depth or depth, depth),
        )

    @property
    def conv_padding(self) -> str:
        """`padding` in rules.Conv's words: "SAME" or "CIRCULAR"."""
        return PADDINGS.get(self.padding, self.padding)

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
