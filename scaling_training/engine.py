"""The training engine: pure step functions, scanned chunks and the evaluator.

Everything that trains or evaluates a model goes through here: single runs
(scaling_training/single.py), sweeps (scaling_training/sweep.py), the probes (scaling/grid.py)
and the benchmarks. No command line, no files, no flags.

The model travels as (graphdef, params, rest): `params` is the pure dict of `nnx.Param`
values the optimizer updates, `rest` every other state (BatchNorm statistics, dropout RNG
counters), returned updated by each step.

Members (many (seed, lr) runs in one program, for sweeps and probes) are in
scaling_training/members.py, built on the step and chunk functions here.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import scaling_data as data

# -- the model as pure trees -------------------------------------------------------------------


def split_model(model: nnx.Module) -> tuple[Any, dict, dict]:
    """(graphdef, params pure dict, rest pure dict) of an NNX model."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)


def cast_floats(tree: Any, dtype: Any) -> Any:
    """`tree` with every floating leaf cast to `dtype` (integers and PRNG keys untouched)."""

    def cast(x):
        if jnp.issubdtype(jnp.result_type(x), jnp.floating):
            return jnp.asarray(x).astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def loss_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (jnp.argmax(logits, -1) == labels).mean()


# -- one step, a chunk of steps ----------------------------------------------------------------


def make_step(graphdef: Any, optimizer: optax.GradientTransformation, compute_dtype=None):
    """One optimizer step, unjitted (scanned by chunks, vmapped by members).

    (params, rest, opt_state, x, y) -> (params, rest, opt_state, loss, accuracy); the loss
    is the one before the update. `compute_dtype` (e.g. jnp.bfloat16): the forward and
    backward pass run in it while params, optimizer state, gradients and the loss stay
    float32 (mixed precision: the cast is inside the differentiated function).
    """

    def loss_fn(params, rest, x, y):
        if compute_dtype is not None:
            params, x = cast_floats(params, compute_dtype), cast_floats(x, compute_dtype)
        model = nnx.merge(graphdef, params, rest)
        model.train()  # batch statistics (updated in `rest`), dropout on
        logits = model(x).astype(jnp.float32)
        loss, accuracy = loss_and_accuracy(logits, y)
        new_rest = nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))
        # Statistics computed in the compute dtype are stored back in the state's own dtype.
        new_rest = jax.tree.map(lambda new, old: new.astype(old.dtype), new_rest, rest)
        return loss, (accuracy, new_rest)

    def step(params, rest, opt_state, x, y):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (accuracy, rest)), grads = grad_fn(params, rest, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, rest, opt_state, loss, accuracy

    return step


def make_train_chunk(graphdef: Any, optimizer: optax.GradientTransformation, compute_dtype=None):
    """A jitted function running one optimizer step per row of the batches with `lax.scan`.

    (params, rest, opt_state, x_batches[K, B, ...], y_batches[K, B]) ->
    (params, rest, opt_state, losses[K], accuracies[K]); losses are before each update.
    The batches are gathered on the host (each process its own shard of them), so the
    same function runs on one device, a mesh, or many hosts (see scaling_training/sharding.py).
    """
    step_fn = make_step(graphdef, optimizer, compute_dtype)

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


def chunk_lengths(steps: int, *every: int, start: int = 0) -> list[int]:
    """Split steps (start, steps] into scanned chunks ending on every multiple of each `every`
    (log, eval, checkpoint; 0 = never), so a resume at a checkpoint sees the same chunks."""
    boundaries = {steps}
    for n in every:
        if n > 0:
            boundaries |= set(range(n, steps, n))
    ends = sorted(b for b in boundaries if b > start)
    return [end - begin for begin, end in zip([start] + ends[:-1], ends)]


HOST_CHUNK_BYTES = 256 * 2**20  # at most this much of one chunk's batches held on the host


def host_chunk_steps(dataset: data.Dataset, batch_size: int, members: int = 1) -> int:
    """Steps per chunk at which its host batches (every member's) stay under
    HOST_CHUNK_BYTES, at least 1: a chunk boundary every this many steps, so that a large
    --log_every or --steps never gathers more batches than the host can hold."""
    per_step = members * batch_size * (dataset.x_train[0].nbytes + dataset.y_train[0].nbytes)
    return max(1, HOST_CHUNK_BYTES // max(per_step, 1))


def chunk_batches(
    dataset: data.Dataset,
    batch_size: int,
    length: int,
    seed: int,
    step: int,
    augment: str = "none",
    columns: slice = slice(None),
) -> tuple[np.ndarray, np.ndarray]:
    """The host batches [K, B', ...] of steps step+1 .. step+length for `seed`.

    `columns`: the examples of each batch this process feeds (multi-host); the batch
    order and the augmentation of every example depend only on (seed, step), whoever
    gathers them.
    """
    indices = data.batch_indices(len(dataset.x_train), batch_size, length, seed, step)
    x = data.augment_batches(
        dataset.x_train[indices[:, columns]], augment, seed, step, batch_size, columns
    )
    return x, dataset.y_train[indices[:, columns]]


# -- evaluation --------------------------------------------------------------------------------


def make_batch_sums(graphdef: Any, compute_dtype=None):
    """(params, rest, x, y) -> (summed loss, correct count) of one batch, in eval mode.

    Eval mode: BatchNorm uses its running statistics and dropout is off. Single runs,
    sweeps and probes all evaluate through this function (members vmap it).
    """

    def batch_sums(params, rest, x, y):
        if compute_dtype is not None:
            params, x = cast_floats(params, compute_dtype), cast_floats(x, compute_dtype)
        model = nnx.merge(graphdef, params, rest)
        model.eval()
        logits = model(x).astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return losses.sum(), (jnp.argmax(logits, -1) == y).sum()

    return batch_sums


def make_evaluate(
    graphdef: Any,
    batch_size: int = 1024,
    member_axes: int = 0,
    compute_dtype=None,
    out_sharding: Any = None,
):
    """(params, rest, x, y) -> (mean loss, accuracy) over the whole set, in batches of
    `batch_size` examples in all, in eval mode: with M stacked members each call evaluates
    batch_size // M examples per member, so memory does not grow with the sweep (a sweep of
    32 width-512 vits over 1024 examples each ran out of 24 GB).

    `member_axes`: leading axes of stacked members in params and rest (1 for the engine's
    members, 2 for [seeds, lrs]); the results are then numpy arrays of that shape, else
    floats. `out_sharding`: where the sums land (replicated, for a mesh of members).
    """
    batch_sums = make_batch_sums(graphdef, compute_dtype)
    for _ in range(member_axes):
        batch_sums = jax.vmap(batch_sums, in_axes=(0, 0, None, None))
    batch_sums = jax.jit(batch_sums, out_shardings=out_sharding)

    def evaluate(params, rest, x, y):
        members = int(np.prod(np.shape(jax.tree.leaves(params)[0])[:member_axes]))
        step = max(1, batch_size // members)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), step):
            batch_loss, batch_correct = batch_sums(
                params, rest, x[start : start + step], y[start : start + step]
            )
            loss_sum = loss_sum + np.asarray(batch_loss, np.float64)
            correct = correct + np.asarray(batch_correct)
        count = np.size(y)  # every label (one per example for classification)
        loss, accuracy = loss_sum / count, correct / count
        if member_axes == 0:
            return float(loss), float(accuracy)
        return loss, accuracy

    return evaluate
