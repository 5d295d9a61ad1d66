"""Pure step functions: a scanned chunk of training steps and a batched evaluation.

The model travels as (graphdef, params, rest): `params` is the pure dict of
`nnx.Param` values the optimizer updates, `rest` every other state (e.g. batch
statistics), returned updated by each step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def split_model(model: nnx.Module) -> tuple[Any, dict, dict]:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)


def loss_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (jnp.argmax(logits, -1) == labels).mean()


def make_step(graphdef: Any, optimizer: optax.GradientTransformation):
    """One optimizer step, unjitted (scanned by chunks, vmapped by sweeps).

    (params, rest, opt_state, x, y) -> (params, rest, opt_state, loss, accuracy);
    the loss is the one before the update.
    """

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest)
        model.train()  # batch statistics (updated in `rest`), dropout on
        logits = model(x)
        loss, accuracy = loss_and_accuracy(logits, y)
        return loss, (accuracy, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param))))

    def step(params, rest, opt_state, x, y):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (accuracy, rest)), grads = grad_fn(params, rest, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, rest, opt_state, loss, accuracy

    return step


def make_train_chunk(graphdef: Any, optimizer: optax.GradientTransformation):
    """A jitted function running one optimizer step per row of the batches with `lax.scan`.

    (params, rest, opt_state, x_batches[K, B, ...], y_batches[K, B]) ->
    (params, rest, opt_state, losses[K], accuracies[K]); losses are before each update.
    The batches are gathered on the host (each process its own shard of them), so the
    same function runs on one device, a mesh, or many hosts (see training/sharding.py).
    """
    step_fn = make_step(graphdef, optimizer)

    @jax.jit
    def train_chunk(params, rest, opt_state, x_batches, y_batches):
        def step(carry, batch):
            params, rest, opt_state, loss, accuracy = step_fn(*carry, *batch)
            return (params, rest, opt_state), (loss, accuracy)

        (params, rest, opt_state), (losses, accuracies) = jax.lax.scan(
            step, (params, rest, opt_state), (x_batches, y_batches)
        )
        return params, rest, opt_state, losses, accuracies

    return train_chunk


def make_evaluate(graphdef: Any, batch_size: int = 1024):
    """(params, rest, x, y) -> (mean loss, accuracy) over the whole set, in batches."""

    @jax.jit
    def batch_sums(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest)
        model.eval()  # running statistics, no dropout
        logits = model(x)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return losses.sum(), (jnp.argmax(logits, -1) == y).sum()

    def evaluate(params, rest, x, y) -> tuple[float, float]:
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            batch_loss, batch_correct = batch_sums(
                params, rest, x[start : start + batch_size], y[start : start + batch_size]
            )
            loss_sum += float(batch_loss)
            correct += int(batch_correct)
        return loss_sum / y.size, correct / y.size  # per label: every token of a sequence

    return evaluate
