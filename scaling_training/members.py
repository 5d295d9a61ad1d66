"""Vmapped members: many (seed, lr) runs of one model trained in one compiled program.

Members are stacked on one leading axis M = seeds x lrs, member m = (seed m // L,
lr m % L). Batches depend on the seed only; each member picks its seed's batches inside the
program, so one compiled program trains them all, and the member axis can be sharded over a
device mesh (axis `members`) like any other array axis. Sweeps (scaling_training/sweep.py)
and the probes' LR grids (scaling/grid.py) train through `train_members`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import scaling_data as data
from scaling_training.engine import chunk_batches, chunk_lengths, host_chunk_steps, make_step


def set_lr(opt_state: Any, lr: float, weight_decay: float | None = None) -> Any:
    """`opt_state` with the injected learning rate replaced by `lr` (and the injected
    weight decay by `weight_decay`, when given)."""

    def is_inject(x):
        return isinstance(x, optax.InjectHyperparamsState | optax.InjectStatefulHyperparamsState)

    def replace(x):
        if not is_inject(x):
            return x
        hyperparams = dict(x.hyperparams)
        hyperparams["learning_rate"] = jnp.asarray(lr, hyperparams["learning_rate"].dtype)
        if weight_decay is not None:
            old = hyperparams["weight_decay"]
            hyperparams["weight_decay"] = jnp.asarray(weight_decay, old.dtype)
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
    optimizer: optax.GradientTransformation,
    splits: Sequence[tuple],
    lrs: Sequence[float],
    weight_decays: Sequence[float] | None = None,
) -> tuple[Any, Any, Any]:
    """(params, rest, opt_state) stacked over members m = seed_i x L + lr_j, from one
    (graphdef, params, rest) per seed; member j's weight decay `weight_decays[j]` when
    given (the optimizer must inject it)."""
    decays = [None] * len(lrs) if weight_decays is None else [float(w) for w in weight_decays]
    if len(decays) != len(lrs):
        raise ValueError("one weight decay per learning rate")
    states = []
    for _, params, rest in splits:
        opt_state = optimizer.init(params)
        states += [(params, rest, set_lr(opt_state, lr, wd)) for lr, wd in zip(lrs, decays)]
    return stack(states)


@dataclasses.dataclass(frozen=True, eq=False)
class MemberGrid:
    """The members and what they train on: member (seeds[i], lrs[j]) trains at lrs[j] (and
    weight decay weight_decays[j], when given: the optimizer must inject it) on the batches
    of `dataset` its seed draws, `steps` steps of `batch_size` examples with `augment`, in
    chunks ending every `log_every` steps."""

    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    dataset: data.Dataset
    steps: int
    batch_size: int
    log_every: int
    augment: str = "none"
    weight_decays: tuple[float, ...] | None = None


def train_members(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    splits: Sequence[tuple],
    grid: MemberGrid,
    on_chunk: Callable | None = None,
    *,
    compute_dtype=None,
    placement: MemberPlacement | None = None,
) -> Members:
    """Train every member of `grid` from `splits` (one (graphdef, params, rest) per seed).

    `on_chunk(step, alive[S, L], losses[S, L, K], seconds, length)` reports progress.
    `placement`: where members and batches live on a mesh (None: the default device).
    """
    import time

    lrs, seeds = [float(lr) for lr in grid.lrs], list(grid.seeds)
    dataset, steps, batch_size = grid.dataset, grid.steps, grid.batch_size
    count = len(seeds) * len(lrs)
    state = init_members(optimizer, splits, lrs, grid.weight_decays)
    alive, diverged_at = np.ones(count, bool), np.zeros(count, np.int32)
    seed_index = np.repeat(np.arange(len(seeds), dtype=np.int32), len(lrs))
    place = placement or MemberPlacement()
    state, alive, diverged_at, seed_index = place.members((state, alive, diverged_at, seed_index))
    chunk = make_members_chunk(
        graphdef, optimizer, compute_dtype, place.member_sharding, place.replicated
    )
    result = Members(lrs, seeds, state, alive, diverged_at, np.zeros((len(seeds), len(lrs), 0)))
    step = 0
    cap = host_chunk_steps(dataset, batch_size, len(seeds))  # batches are per seed
    for length in chunk_lengths(steps, grid.log_every, cap):
        chunk_start = time.perf_counter()
        batches = [chunk_batches(dataset, batch_size, length, s, step, grid.augment) for s in seeds]
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
