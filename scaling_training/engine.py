"""The training engine: pure step functions, scanned chunks, the evaluator and vmapped members.

Everything that trains or evaluates a model goes through here: single runs
(scaling_training/single.py), sweeps (scaling_training/sweep.py), the probes (scaling/grid.py)
and the benchmarks. No command line, no files, no flags.

The model travels as (graphdef, params, rest): `params` is the pure dict of `nnx.Param`
values the optimizer updates, `rest` every other state (BatchNorm statistics, dropout RNG
counters), returned updated by each step.

Members (sweeps) are stacked on one leading axis M = seeds x lrs, member m = (seed m // L,
lr m % L). Batches depend on the seed only; each member picks its seed's batches inside the
program, so one compiled program trains them all, and the member axis can be sharded over a
device mesh (axis `members`) like any other array axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
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
    `batch_size`, in eval mode.

    `member_axes`: leading axes of stacked members in params and rest (1 for the engine's
    members, 2 for [seeds, lrs]); the results are then numpy arrays of that shape, else
    floats. `out_sharding`: where the sums land (replicated, for a mesh of members).
    """
    batch_sums = make_batch_sums(graphdef, compute_dtype)
    for _ in range(member_axes):
        batch_sums = jax.vmap(batch_sums, in_axes=(0, 0, None, None))
    batch_sums = jax.jit(batch_sums, out_shardings=out_sharding)

    def evaluate(params, rest, x, y):
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            batch_loss, batch_correct = batch_sums(
                params, rest, x[start : start + batch_size], y[start : start + batch_size]
            )
            loss_sum = loss_sum + np.asarray(batch_loss, np.float64)
            correct = correct + np.asarray(batch_correct)
        count = np.size(y)  # every label (one per example for classification)
        loss, accuracy = loss_sum / count, correct / count
        if member_axes == 0:
            return float(loss), float(accuracy)
        return loss, accuracy

    return evaluate


# -- members: many (seed, lr) runs in one program -----------------------------------------------


def set_lr(opt_state: Any, lr: float) -> Any:
    """`opt_state` with the injected learning rate replaced by `lr`."""

    def is_inject(x):
        return isinstance(x, optax.InjectHyperparamsState | optax.InjectStatefulHyperparamsState)

    def replace(x):
        if not is_inject(x):
            return x
        hyperparams = dict(x.hyperparams)
        hyperparams["learning_rate"] = jnp.asarray(lr, hyperparams["learning_rate"].dtype)
        return x._replace(hyperparams=hyperparams)

    return jax.tree.map(replace, opt_state, is_leaf=is_inject)


def stack(trees: Sequence[Any]) -> Any:
    """Trees of equal structure stacked leaf by leaf on a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if x.dtype.kind == "f"]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def make_members_chunk(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    compute_dtype=None,
    state_sharding: Any = None,
    replicated: Any = None,
):
    """A jitted chunk over members [M]: (state, alive[M], diverged_at[M], seed_index[M],
    x[S, K, B, ...], y[S, K, B], steps[K]) -> (state, alive, diverged_at, losses[M, K],
    accuracies[M, K]).

    A member whose loss or new parameters are non-finite keeps its last finite state
    (`jnp.where`, the same program for every member) and records the step; its later
    losses are NaN. `state_sharding` / `replicated`: the layout of the state and of the
    small outputs on a mesh (None: wherever the inputs are).
    """
    step_fn = make_step(graphdef, optimizer, compute_dtype)

    def member(state, alive, diverged_at, seed_index, x_batches, y_batches, step_numbers):
        def body(carry, inputs):
            state, alive, diverged_at = carry
            x, y, number = inputs
            params, rest, opt_state, loss, accuracy = step_fn(*state, x, y)
            new = (params, rest, opt_state)
            ok = alive & jnp.isfinite(loss) & all_finite(params)
            state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
            diverged_at = jnp.where(alive & ~ok, number, diverged_at)
            nan = jnp.asarray(jnp.nan, loss.dtype)
            loss = jnp.where(alive, loss, nan)
            accuracy = jnp.where(alive, accuracy, nan)
            return (state, ok, diverged_at), (loss, accuracy)

        (state, alive, diverged_at), (losses, accuracies) = jax.lax.scan(
            body,
            (state, alive, diverged_at),
            (x_batches[seed_index], y_batches[seed_index], step_numbers),
        )
        return state, alive, diverged_at, losses, accuracies

    members = jax.vmap(member, in_axes=(0, 0, 0, 0, None, None, None))
    if state_sharding is None:
        return jax.jit(members)
    return jax.jit(members, out_shardings=(state_sharding,) + (replicated,) * 4)


@dataclasses.dataclass
class Members:
    """The outcome of `train_members`: per member [M] state, and per [seed, lr] records."""

    lrs: list[float]
    seeds: list[int]
    state: tuple[Any, Any, Any]  # (params, rest, opt_state), leaves [M, ...]
    alive: np.ndarray  # [S, L]
    diverged_at: np.ndarray  # [S, L], 0 while alive
    last_losses: np.ndarray  # [S, L, K] of the last chunk (NaN after divergence)

    def grid(self, values: np.ndarray) -> np.ndarray:
        """Per-member values [M, ...] as [S, L, ...]."""
        return np.asarray(values).reshape(len(self.seeds), len(self.lrs), *np.shape(values)[1:])


def init_members(
    optimizer: optax.GradientTransformation, splits: Sequence[tuple], lrs: Sequence[float]
) -> tuple[Any, Any, Any]:
    """(params, rest, opt_state) stacked over members m = seed_i x L + lr_j, from one
    (graphdef, params, rest) per seed."""
    states = []
    for _, params, rest in splits:
        opt_state = optimizer.init(params)
        states += [(params, rest, set_lr(opt_state, lr)) for lr in lrs]
    return stack(states)


def train_members(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    splits: Sequence[tuple],
    lrs: Sequence[float],
    seeds: Sequence[int],
    dataset: data.Dataset,
    steps: int,
    batch_size: int,
    log_every: int,
    on_chunk: Callable | None = None,
    *,
    augment: str = "none",
    compute_dtype=None,
    placement: MemberPlacement | None = None,
) -> Members:
    """Train every (seed, lr) member from `splits` (one (graphdef, params, rest) per seed)
    for `steps`, in chunks ending every `log_every` steps.

    `on_chunk(step, alive[S, L], losses[S, L, K], seconds, length)` reports progress.
    `placement`: where members and batches live on a mesh (None: the default device).
    """
    import time

    lrs, seeds = [float(lr) for lr in lrs], list(seeds)
    count = len(seeds) * len(lrs)
    state = init_members(optimizer, splits, lrs)
    alive, diverged_at = np.ones(count, bool), np.zeros(count, np.int32)
    seed_index = np.repeat(np.arange(len(seeds), dtype=np.int32), len(lrs))
    place = placement or MemberPlacement()
    state, alive, diverged_at, seed_index = place.members((state, alive, diverged_at, seed_index))
    chunk = make_members_chunk(
        graphdef, optimizer, compute_dtype, place.member_sharding, place.replicated
    )
    result = Members(lrs, seeds, state, alive, diverged_at, np.zeros((len(seeds), len(lrs), 0)))
    step = 0
    for length in chunk_lengths(steps, log_every):
        chunk_start = time.perf_counter()
        batches = [chunk_batches(dataset, batch_size, length, s, step, augment) for s in seeds]
        x_batches, y_batches = (
            place.batches(np.stack([b[0] for b in batches])),
            place.batches(np.stack([b[1] for b in batches])),
        )
        numbers = place.replicate(np.arange(step + 1, step + length + 1, dtype=np.int32))
        state, alive, diverged_at, losses, _ = chunk(
            state, alive, diverged_at, seed_index, x_batches, y_batches, numbers
        )
        result.last_losses = result.grid(np.asarray(losses))
        step += length
        if on_chunk:
            alive_grid = result.grid(np.asarray(alive))
            on_chunk(
                step, alive_grid, result.last_losses, time.perf_counter() - chunk_start, length
            )
    result.state = state
    result.alive = result.grid(np.asarray(alive))
    result.diverged_at = np.where(result.alive, 0, result.grid(np.asarray(diverged_at)))
    return result


@dataclasses.dataclass(frozen=True)
class MemberPlacement:
    """Where members live: `mesh` None = the default device; else members are split over
    the mesh axis `members` (if present) and each member's batch over `data` (if present)."""

    mesh: Any = None

    @property
    def replicated(self):
        from jax.sharding import NamedSharding, PartitionSpec

        return None if self.mesh is None else NamedSharding(self.mesh, PartitionSpec())

    @property
    def member_sharding(self):
        from jax.sharding import NamedSharding, PartitionSpec

        if self.mesh is None:
            return None
        axis = "members" if "members" in self.mesh.shape else None
        return NamedSharding(self.mesh, PartitionSpec(axis))

    def _put(self, tree: Any, sharding: Any) -> Any:
        if self.mesh is None:
            return jax.tree.map(jnp.asarray, tree)

        def put(x):
            if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
                raw = put(jax.random.key_data(x))
                return jax.random.wrap_key_data(raw, impl=jax.random.key_impl(x))
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

        return jax.tree.map(put, tree)

    def members(self, tree: Any) -> Any:
        """Arrays with a leading member axis [M, ...], every process holding all of them."""
        return self._put(tree, self.member_sharding)

    def replicate(self, tree: Any) -> Any:
        return self._put(tree, self.replicated)

    def batches(self, x: np.ndarray) -> Any:
        """[S, K, B, ...]: the examples of each batch split over `data`."""
        from jax.sharding import NamedSharding, PartitionSpec

        if self.mesh is None or "data" not in self.mesh.shape:
            return self.replicate(x)
        return self._put(x, NamedSharding(self.mesh, PartitionSpec(None, None, "data")))
