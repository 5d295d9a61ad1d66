"""Learning-rate sweeps in one compiled program: every (lr, seed) pair trained at once.

The training state of each member is stacked on two leading axes [seeds, lrs] and the
step is vmapped over both (the lr lives in the optimizer state as an array, so one
compilation serves every lr). Batches depend on the seed only, so the lr axis shares
them. A member whose loss or parameters become non-finite is frozen at its last finite
state and its step recorded; the others never see it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import data
import rules
from training import outputs
from training.config import TrainConfig, sweep_lrs


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


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if x.dtype.kind == "f"]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def make_sweep_chunk(graphdef: Any, optimizer: optax.GradientTransformation):
    """A jitted chunk over members [S, L]: (state, alive[S,L], diverged_at[S,L], x[S,K,B],
    y[S,K,B], steps[K]) -> (state, alive, diverged_at, losses[S,L,K], accuracies[S,L,K])."""
    from training.steps import make_step

    step_fn = make_step(graphdef, optimizer)

    def member(state, alive, diverged_at, x_batches, y_batches, step_numbers):
        def body(carry, inputs):
            state, alive, diverged_at = carry
            x, y, number = inputs
            params, rest, opt_state, loss, accuracy = step_fn(*state, x, y)
            new = (params, rest, opt_state)
            ok = alive & jnp.isfinite(loss) & _all_finite(params)
            # Freeze a diverged member at its last finite state: where(), not a branch,
            # so every member runs the same program.
            state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
            diverged_at = jnp.where(alive & ~ok, number, diverged_at)
            nan = jnp.asarray(jnp.nan, loss.dtype)
            loss = jnp.where(alive, loss, nan)
            accuracy = jnp.where(alive, accuracy, nan)
            return (state, ok, diverged_at), (loss, accuracy)

        (state, alive, diverged_at), (losses, accuracies) = jax.lax.scan(
            body, (state, alive, diverged_at), (x_batches, y_batches, step_numbers)
        )
        return state, alive, diverged_at, losses, accuracies

    over_lrs = jax.vmap(member, in_axes=(0, 0, 0, None, None, None))
    over_seeds = jax.vmap(over_lrs, in_axes=(0, 0, 0, 0, 0, None))
    return jax.jit(over_seeds)


def make_sweep_evaluate(graphdef: Any, batch_size: int = 1024):
    """(params[S,L], rest[S,L], x, y) -> (mean loss[S,L], accuracy[S,L]) as numpy."""

    def sums(params, rest, x, y):
        logits = nnx.merge(graphdef, params, rest)(x)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return losses.sum(), (jnp.argmax(logits, -1) == y).sum()

    batch_sums = jax.jit(jax.vmap(jax.vmap(sums, in_axes=(0, 0, None, None)), (0, 0, None, None)))

    def evaluate(params, rest, x, y):
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            b_loss, b_correct = batch_sums(
                params, rest, x[start : start + batch_size], y[start : start + batch_size]
            )
            loss_sum, correct = (
                loss_sum + np.asarray(b_loss, np.float64),
                correct + np.asarray(b_correct),
            )
        return loss_sum / y.size, correct / y.size  # per label: every token of a sequence

    return evaluate


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def best_lr(lrs: list[float], final_loss: np.ndarray, diverged: np.ndarray) -> float | None:
    """The lr with the lowest mean final train loss over seeds, among lrs no seed diverged at."""
    candidates = [
        (float(final_loss[:, i].mean()), lr)
        for i, lr in enumerate(lrs)
        if not diverged[:, i].any() and np.isfinite(final_loss[:, i]).all()
    ]
    return min(candidates)[1] if candidates else None


def train_members(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    splits: list[tuple[Any, Any, Any]],
    lrs: list[float],
    seeds: list[int],
    dataset: data.Dataset,
    steps: int,
    batch_size: int,
    log_every: int,
    on_chunk: Callable | None = None,
):
    """Train every (seed, lr) member from `splits` (one (graphdef, params, rest) per seed).

    Returns (state [S, L, ...], alive[S, L], diverged_at[S, L], losses of the last chunk
    [S, L, K]), all but the state as numpy. `on_chunk(step, alive, losses, seconds,
    length)` reports progress.
    """
    from training.loop import chunk_lengths

    per_seed = []
    for _, params, rest in splits:
        opt_state = optimizer.init(params)
        per_seed.append(_stack([(params, rest, set_lr(opt_state, lr)) for lr in lrs]))
    state = _stack(per_seed)  # leaves [S, L, ...]
    shape = (len(seeds), len(lrs))
    alive, diverged_at = jnp.ones(shape, bool), jnp.zeros(shape, jnp.int32)
    chunk = make_sweep_chunk(graphdef, optimizer)
    step, losses = 0, None
    for length in chunk_lengths(steps, log_every):
        chunk_start = time.perf_counter()
        batches = [
            data.batch_indices(len(dataset.x_train), batch_size, length, s, step) for s in seeds
        ]
        x_batches = np.stack([dataset.x_train[b] for b in batches])
        y_batches = np.stack([dataset.y_train[b] for b in batches])
        numbers = np.arange(step + 1, step + length + 1, dtype=np.int32)
        state, alive, diverged_at, losses, _ = chunk(
            state, alive, diverged_at, x_batches, y_batches, numbers
        )
        losses = np.asarray(losses)
        step += length
        if on_chunk:
            on_chunk(step, np.asarray(alive), losses, time.perf_counter() - chunk_start, length)
    return state, np.asarray(alive), np.asarray(diverged_at), losses


def run_sweep(config: TrainConfig, dataset: data.Dataset, echo: Callable[[str], None]):
    """Train every (lr, seed) pair of `config` at once; write sweep.json and sweep.png."""
    from training.loop import RunResult, build_model, config_record
    from training.optimizers import make_optimizer
    from training.steps import split_model

    lrs = sweep_lrs(config)
    seeds = [config.seed + i for i in range(config.seeds)]
    workdir = config.workdir_path
    models = [build_model(dataclasses.replace(config, seed=s), dataset) for s in seeds]
    echo(dataset.summary())
    echo(rules.describe(models[0], title=f"rule {config.rule}: {rules.get(config.rule).pipeline}"))
    echo(f"sweep: {len(lrs)} learning rates x {len(seeds)} seeds = {len(lrs) * len(seeds)} runs")
    splits = [split_model(m) for m in models]
    graphdef = splits[0][0]
    optimizer = make_optimizer(
        config.optimizer,
        lrs[0],
        rules.param_scales(models[0]),
        config.momentum,
        config.weight_decay_value,
    )
    archived = outputs.archive_previous_run(workdir)
    if archived:
        echo(f"earlier outputs in {workdir} moved to {archived}")
    outputs.write_json(
        os.path.join(workdir, "config.json"), config_record(config) | {"sweep_lrs": lrs}
    )
    start = time.perf_counter()

    def progress(step, alive, losses, seconds, length):
        rate = length / seconds
        running = int(alive.sum())
        best = np.nanmin(losses.mean(-1)) if running else math.nan
        echo(
            f"step {step}/{config.steps} | {running}/{alive.size} runs alive | "
            f"best loss {best:.4f} | {rate:,.0f} steps/s | "
            f"eta {outputs.format_duration((config.steps - step) / rate)}"
        )

    state, alive, diverged_at, last_losses = train_members(
        graphdef,
        optimizer,
        splits,
        lrs,
        seeds,
        dataset,
        config.steps,
        config.batch_size,
        config.log_every,
        progress,
    )
    params, rest, _ = state
    evaluate = make_sweep_evaluate(graphdef)
    test_loss, test_accuracy = evaluate(params, rest, dataset.x_test, dataset.y_test)
    diverged = ~alive
    final_loss = np.where(diverged, np.nan, last_losses.mean(-1))
    test_accuracy = np.where(diverged, np.nan, test_accuracy)
    best = best_lr(lrs, final_loss, diverged)

    def listed(a):
        return [[outputs.finite_or_none(v) for v in row] for row in a]

    summary = {
        "lrs": lrs,
        "seeds": seeds,
        "steps": config.steps,
        "final_train_loss": listed(final_loss),  # [seed][lr], mean over the last log_every
        "test_loss": listed(np.where(diverged, np.nan, test_loss)),
        "test_accuracy": listed(test_accuracy),
        "diverged": diverged.tolist(),
        "diverged_at_step": np.where(diverged, np.asarray(diverged_at), 0).tolist(),
        "best_lr": best,
        "seconds": time.perf_counter() - start,
    }
    outputs.write_json(os.path.join(workdir, "sweep.json"), summary)
    if config.plots:
        plot_sweep(summary, os.path.join(workdir, "sweep.png"))
    runs = len(lrs) * len(seeds)
    echo(
        f"done: {runs} runs of {config.steps} steps in {summary['seconds']:.1f} s, "
        f"{int(diverged.sum())} diverged, best lr {best}; outputs in {workdir}"
    )
    return RunResult(
        steps_done=config.steps,
        diverged=False,  # a sweep succeeds even when some members diverge (recorded above)
        test_loss=None,
        test_accuracy=None,
        seconds=summary["seconds"],
    )


def plot_sweep(summary: dict, png_path: str) -> None:
    """Final train loss against lr, one line per seed; diverged members as x at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lrs = summary["lrs"]
    finite = [v for row in summary["final_train_loss"] for v in row if v is not None]
    top = max(finite) * 1.1 if finite else 1.0
    for seed, row, div in zip(summary["seeds"], summary["final_train_loss"], summary["diverged"]):
        ax.plot(lrs, [math.nan if v is None else v for v in row], "o-", label=f"seed {seed}")
        bad = [lr for lr, d in zip(lrs, div) if d]
        ax.plot(bad, [top] * len(bad), "rx", ms=8)
    if summary["best_lr"] is not None:
        ax.axvline(summary["best_lr"], color="gray", ls=":", label=f"best {summary['best_lr']:g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="final train loss", title="lr sweep")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(png_path + ".tmp.png", png_path)
