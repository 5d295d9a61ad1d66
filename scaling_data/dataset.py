"""An in-memory classification dataset and deterministic batching."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test arrays (float32 inputs, int32 labels), inputs standardised on train stats."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, "
            f"input {'x'.join(map(str, self.input_shape))}, {self.num_classes} classes"
        )

    def extra_metrics(self, loss: float) -> dict[str, float]:
        """Metrics derived from a mean test loss (text sets: bits per byte)."""
        return {}


def make_dataset(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    """Standardise inputs with the training set's mean and std, fix dtypes."""
    mean, std = x_train.mean(), x_train.std() + 1e-8
    return Dataset(
        name=name,
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=np.asarray(y_train, np.int32),
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=np.asarray(y_test, np.int32),
        num_classes=int(num_classes),
    )


def batch_indices(
    num_examples: int, batch_size: int, num_steps: int, seed: int, start_step: int = 0
):
    """Indices of the training batches for steps [start_step, start_step + num_steps).

    Each epoch is a fresh permutation drawn from (seed, epoch), dropping the last
    partial batch, so the batch of a given step depends only on the seed and the step.
    """
    if batch_size > num_examples:
        raise ValueError(f"batch size {batch_size} exceeds the {num_examples} training examples")
    per_epoch = num_examples // batch_size
    out = np.empty((num_steps, batch_size), np.int32)
    cached_epoch, perm = None, None
    for i, step in enumerate(range(start_step, start_step + num_steps)):
        epoch, position = divmod(step, per_epoch)
        if epoch != cached_epoch:
            perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
            cached_epoch = epoch
        out[i] = perm[position * batch_size : (position + 1) * batch_size]
    return out
