"""What a rule sees (`LayerMeta`) and what it decides (`Scales`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

Role = Literal["input", "hidden", "output", "bias", "norm", "branch", "attention"]
# "branch" and "attention" are no tensors. "branch" stands for a residual branch's output,
# whose `multiplier` a model applies where the branch joins the residual stream (after any
# norm in the branch); "attention" for attention logits q.k, whose `multiplier` corrects
# the standard 1/sqrt(head_dim) (fan_in = head_dim; see rules/attention.py).
ROLES: tuple[str, ...] = ("input", "hidden", "output", "bias", "norm", "branch", "attention")
OptimizerFamily = Literal["sgd", "adam", "muon"]
OPTIMIZER_FAMILIES: tuple[str, ...] = ("sgd", "adam", "muon")  # muon: rules/muon_family.py


@dataclasses.dataclass(frozen=True)
class LayerMeta:
    """Metadata of one parameter tensor, as a rule needs it.

    `fan_in` counts every input coordinate a unit reads (the receptive field
    included for convolutions). A `base_fan_*` of None means that dimension does
    not grow with width; otherwise the width multiplier is `fan / base_fan`.
    `depth` and `base_depth` count layers (or residual blocks) the same way.
    `gain` is the activation gain of this layer's *input*: 2 for ReLU, 1 for raw
    data, so that a He init keeps the second moment of pre-activations.
    `branch_index` / `branch_layers`: where a weight sits in its residual branch (0 = the
    branch's first layer, branch_layers - 1 = the last one, whose output joins the
    stream); None outside branches or where a model does not say.
    """

    role: Role
    fan_in: int
    fan_out: int
    base_fan_in: int | None = None
    base_fan_out: int | None = None
    depth: int = 1
    base_depth: int = 1
    block: int | None = None
    num_blocks: int | None = None
    in_residual_branch: bool = False
    gain: float = 1.0
    optimizer: OptimizerFamily = "sgd"
    path: str = ""
    branch_index: int | None = None
    branch_layers: int | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.optimizer not in OPTIMIZER_FAMILIES:
            raise ValueError(
                f"optimizer family must be one of {', '.join(OPTIMIZER_FAMILIES)}, "
                f"got {self.optimizer!r}"
            )
        if self.fan_in < 1 or self.fan_out < 1:
            raise ValueError(f"fan_in and fan_out must be >= 1, got {self.fan_in}, {self.fan_out}")
        if self.depth < 1 or self.base_depth < 1:
            raise ValueError(
                f"depth and base_depth must be >= 1, got {self.depth}, {self.base_depth}"
            )

    @property
    def fan_in_multiplier(self) -> float:
        """How many times wider the input dimension is than at the base shape."""
        return self.fan_in / self.base_fan_in if self.base_fan_in else 1.0

    @property
    def fan_out_multiplier(self) -> float:
        """How many times wider the output dimension is than at the base shape."""
        return self.fan_out / self.base_fan_out if self.base_fan_out else 1.0

    @property
    def depth_multiplier(self) -> float:
        """L / L0: how many times deeper the model is than at the base shape."""
        return self.depth / self.base_depth

    @property
    def last_in_branch(self) -> bool:
        """The last layer of a residual branch (its output is the branch's output)."""
        return self.branch_layers is not None and self.branch_index == self.branch_layers - 1

    @property
    def is_weight(self) -> bool:
        return self.role in ("input", "hidden", "output")


@dataclasses.dataclass(frozen=True)
class Scales:
    """What a rule decides for one parameter tensor.

    init_std: standard deviation of the initial values (0 means the layer's
      constant default: zeros for biases, ones for norm scales).
    multiplier: constant the parameter is multiplied by in the forward pass.
    lr: multiplier on the global learning rate.
    weight_decay: multiplier on the decoupled decay per step, lr x weight_decay. It is not
      multiplied by `lr` above, so a rule that shrinks a layer's LR with width leaves its
      decay per step unchanged (CompleteP's wd x n for Adam LR / n gives the same).
    adam_eps: multiplier on the global Adam epsilon.
    """

    init_std: float = 1.0
    multiplier: float = 1.0
    lr: float = 1.0
    weight_decay: float = 1.0
    adam_eps: float = 1.0

    def replace(self, **changes: float) -> Scales:
        return dataclasses.replace(self, **changes)
