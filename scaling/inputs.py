"""The batches the one-model probes (coord, update, the diagnostics) feed a model.

Two sources, named in every probe's output and JSON (`inputs`):

- "synthetic" (the default): models that read numbers get normalised Gaussian inputs (mean
  squared coordinate 1) and random labels; token models (`lm`, or any model whose dataset
  is a text set) get uniformly random token ids in [0, vocabulary) and random next tokens.
- "data": the first examples of a seeded permutation of the model's own training set
  (token windows and their next tokens for a token model).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from scaling.setup import normalized_inputs

SOURCES = ("synthetic", "data")
TOKEN_MODELS = ("lm",)


@dataclasses.dataclass(frozen=True)
class ProbeInputs:
    """Where a probe's batches come from: `source` in SOURCES, `tokens` for token models."""

    source: str = "synthetic"
    tokens: bool = False
    dataset: object = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"inputs must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "data" and self.dataset is None:
            raise ValueError("inputs 'data' needs the model's dataset")

    def describe(self) -> str:
        """What the batches are, for the printed table and the JSON."""
        if self.source == "data":
            what = "token windows" if self.tokens else "examples"
            return f"dataset: training {what} of {getattr(self.dataset, 'name', '?')}"
        return "random token ids" if self.tokens else "normalised Gaussian inputs"

    def batch(self, shape: tuple[int, ...], classes: int, size: int, seed: int):
        """(x, labels) of `size` examples for `seed`: x [size, *shape], labels [size] (or
        [size, length] next tokens for a token model)."""
        if self.source == "data":
            order = np.random.default_rng(seed).permutation(len(self.dataset.x_train))[:size]
            return self.dataset.x_train[order], self.dataset.y_train[order]
        if self.tokens:
            keys = jax.random.split(jax.random.key(1000 + seed))
            x = jax.random.randint(keys[0], (size, *shape), 0, classes)
            return x, jax.random.randint(keys[1], (size, *shape), 0, classes)
        x = normalized_inputs(shape, size, 1000 + seed)
        return x, jax.random.randint(jax.random.key(seed), (size,), 0, classes)


def for_request(req) -> ProbeInputs:
    """The inputs a probe `Request` asks for: a token model when the family is one or its
    dataset is a text set; the dataset loaded only for `--inputs=data`."""
    import scaling_data

    tokens = req.spec.model in TOKEN_MODELS or bool(
        req.dataset and scaling_data.is_text(req.dataset)
    )
    dataset = req.data() if req.inputs == "data" else None
    return ProbeInputs(source=req.inputs, tokens=tokens, dataset=dataset)


def output_shape(model, x) -> tuple[int, ...]:
    """The shape of model(x) without running it."""
    from flax import nnx

    return tuple(nnx.eval_shape(lambda m, v: m(v), model, x).shape)
