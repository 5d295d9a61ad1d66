"""What every probe shares: building a zoo model at a (width, depth) and a fixed input batch."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import zoo
from scaling_training import models

# The probes' model unless told otherwise: an MLP on 40 inputs, 10 outputs, no biases, base
# width 64, under the SGD family.
PROBE_DEFAULTS = zoo.ModelConfig(
    input_shape=(40,), num_classes=10, base_width=64, use_bias=False, optimizer="sgd"
)


@dataclasses.dataclass(frozen=True)
class ProbeModel:
    """A zoo model under a rule: `config` is the model (its width and depth are the ones the
    probes vary, `config.at(width, depth)`; base_width None: each width is its own base, one
    LR for all layers; base_depth None: no depth scaling)."""

    rule: str = "mup"
    config: zoo.ModelConfig = PROBE_DEFAULTS

    @classmethod
    def of(cls, rule: str = "mup", **fields) -> ProbeModel:
        """`rule` on PROBE_DEFAULTS with `fields` (zoo.ModelConfig's) replaced."""
        return cls(rule, dataclasses.replace(PROBE_DEFAULTS, **fields))

    # What every probe reads of its model (scaling.user_models.UserModel has the same).
    @property
    def model(self) -> str:
        return self.config.name

    @property
    def optimizer(self) -> str:
        return self.config.optimizer

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def at(self, width: int, depth: int) -> zoo.ModelConfig:
        return self.config.at(width, depth)

    def build(self, width: int, depth: int, seed: int) -> nnx.Module:
        return models.build(self.at(width, depth), self.rule, seed)


# Pre-LN transformers: without norms their initial attention and output logits are O(1) at
# probe widths, and an SGD coordinate check drifts for that finite-width reason (WORKSPACE,
# "The ViT under SGD"), so the probes check them as train.py builds them.
PRE_LN_MODELS = ("lm", "vit")


def probe_normalization(model: str, given: str = "") -> str | None:
    """The probes' normalization: `given` (--normalization) if any, else "layer" for the
    pre-LN transformers and None (no norm layers) for the other families."""
    if given:
        return given
    return "layer" if model in PRE_LN_MODELS else None


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
