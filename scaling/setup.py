"""What every probe shares: building a zoo model at a (width, depth) and a fixed input batch."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import zoo
from scaling_training.models import ModelChoice


@dataclasses.dataclass(frozen=True)
class ProbeModel:
    """A model family under a rule; widths and depths vary, everything else stays."""

    model: str = "mlp"
    rule: str = "mup"
    base_width: int | None = 64  # None: each width is its own base (one LR for all layers)
    base_depth: int | None = None  # None: each depth is its own base (no depth scaling)
    activation: str = "relu"
    optimizer: str = "sgd"  # the optimizer family the rule scales for
    use_bias: bool = False
    input_shape: tuple[int, ...] = (40,)
    num_classes: int = 10
    options: tuple[tuple[str, object], ...] = ()  # further ModelConfig fields

    def choice(self, width: int, depth: int) -> ModelChoice:
        return ModelChoice(
            model=self.model,
            rule=self.rule,
            width=width,
            depth=depth,
            base_width=self.base_width,
            base_depth=self.base_depth,  # None: each depth is its own base
            activation=self.activation,
            use_bias=self.use_bias,
            optimizer_family=self.optimizer,
            options=self.options,
        )

    def config(self, width: int, depth: int) -> zoo.ModelConfig:
        return self.choice(width, depth).config(self.input_shape, self.num_classes)

    def build(self, width: int, depth: int, seed: int) -> nnx.Module:
        return self.choice(width, depth).build(self.input_shape, self.num_classes, seed)


def normalized_inputs(shape: tuple[int, ...], batch: int, seed: int) -> jax.Array:
    """Gaussian inputs scaled so each example has mean squared coordinate exactly 1."""
    x = jax.random.normal(jax.random.key(seed), (batch, *shape))
    norms = jnp.sqrt(jnp.mean(x.reshape(batch, -1) ** 2, axis=1))
    return x / norms.reshape((batch,) + (1,) * len(shape))


def layer_order(name: str):
    """Sort key: input layer, then hidden layers in numeric order, then the readout."""
    rank = 0 if name.startswith("input") else 2 if name.startswith("output") else 1
    return (rank, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])


def geometric_grid(low: float, high: float, count: int) -> np.ndarray:
    return np.exp(np.linspace(np.log(low), np.log(high), count))
