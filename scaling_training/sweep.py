"""Learning-rate sweeps in one compiled program: every (lr, seed) pair trained at once.

The members (seeds x lrs) are stacked and vmapped by scaling_training/members.py: the
lr lives in the optimizer state as an array, so one compilation serves every lr, and
batches depend on the seed only. A member whose loss or parameters become non-finite is
frozen at its last finite state and its step recorded; the others never see it. On a
mesh (`--mesh=members:4,data:2`) the members are split over `members` and each member's
batch over `data`; every process of a multi-host run holds the whole sweep's inputs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import jax
import numpy as np

import rules
import scaling_data as data
from scaling_training import engine, outputs
from scaling_training import members as member_runs
from scaling_training.config import TrainConfig, config_record, sweep_lrs
from scaling_training.recipe import build_model, build_optimizer, compute_dtype
from scaling_training.results import RunResult
from scaling_training.sharding import make_plan


def best_lr(lrs: list[float], final_loss: np.ndarray, diverged: np.ndarray) -> float | None:
    """The lr with the lowest mean final train loss over seeds, among lrs no seed diverged at."""
    candidates = [
        (float(final_loss[:, i].mean()), lr)
        for i, lr in enumerate(lrs)
        if not diverged[:, i].any() and np.isfinite(final_loss[:, i]).all()
    ]
    return min(candidates)[1] if candidates else None


def run_sweep(config: TrainConfig, dataset: data.Dataset, echo: Callable[[str], None]):
    """Train every (lr, seed) pair of `config` at once; write sweep.json and sweep.png."""
    lead = jax.process_index() == 0
    if not lead:
        echo = _silent
    lrs = sweep_lrs(config)
    seeds = [config.seed + i for i in range(config.seeds)]
    plan = make_plan(config.mesh, False, config.batch_size, members=len(lrs) * len(seeds))
    placement = member_runs.MemberPlacement(plan.mesh if plan.mesh.size > 1 else None)
    models = [build_model(config, dataset, seed) for seed in seeds]
    echo(dataset.summary())
    echo(rules.describe(models[0], title=f"rule {config.rule}: {rules.get(config.rule).pipeline}"))
    echo(f"sweep: {len(lrs)} learning rates x {len(seeds)} seeds = {len(lrs) * len(seeds)} runs")
    echo(plan.describe(members=len(lrs) * len(seeds)))
    splits = [engine.split_model(m) for m in models]
    graphdef = splits[0][0]
    optimizer = build_optimizer(config, models[0], lrs[0])
    workdir = config.workdir_path
    if lead:
        archived = outputs.archive_previous_run(workdir)
        if archived:
            echo(f"earlier outputs in {workdir} moved to {archived}")
        record = config_record(config) | {"sweep_lrs": lrs}
        outputs.write_json(os.path.join(workdir, "config.json"), record)
    start = time.perf_counter()
    grid = member_runs.MemberGrid(
        lrs=tuple(lrs),
        seeds=tuple(seeds),
        dataset=dataset,
        steps=config.steps,
        batch_size=config.batch_size,
        log_every=config.log_every,
        augment=config.augment,
    )
    members = member_runs.train_members(
        graphdef,
        optimizer,
        splits,
        grid,
        _progress(config, echo),
        compute_dtype=compute_dtype(config),
        placement=placement,
    )
    params, rest, _ = members.state
    evaluate = engine.make_evaluate(
        graphdef, member_axes=1, compute_dtype=compute_dtype(config),
        out_sharding=placement.replicated,
    )  # fmt: skip
    x_test, y_test = placement.replicate((dataset.x_test, dataset.y_test))
    test_loss, test_accuracy = (members.grid(v) for v in evaluate(params, rest, x_test, y_test))
    summary = sweep_summary(members, config.steps, test_loss, test_accuracy)
    summary["seconds"] = time.perf_counter() - start
    if lead:
        outputs.write_json(os.path.join(workdir, "sweep.json"), summary)
        if config.plots:
            plot_sweep(summary, os.path.join(workdir, "sweep.png"))
    diverged = int(np.sum(summary["diverged"]))
    echo(
        f"done: {len(lrs) * len(seeds)} runs of {config.steps} steps in "
        f"{summary['seconds']:.1f} s, {diverged} diverged, best lr {summary['best_lr']}; "
        f"outputs in {workdir}"
    )
    return RunResult(
        steps_done=config.steps,
        diverged=False,  # a sweep succeeds even when some members diverge (recorded above)
        test_loss=None,
        test_accuracy=None,
        seconds=summary["seconds"],
    )


def sweep_summary(members: member_runs.Members, steps: int, test_loss, test_accuracy) -> dict:
    """sweep.json: per [seed][lr] final train loss, test metrics and divergence."""
    diverged = ~members.alive
    final_loss = np.where(diverged, np.nan, members.last_losses.mean(-1))

    def listed(a):
        return [[outputs.finite_or_none(v) for v in row] for row in np.where(diverged, np.nan, a)]

    return {
        "lrs": members.lrs,
        "seeds": members.seeds,
        "steps": steps,
        "final_train_loss": listed(final_loss),  # [seed][lr], mean over the last log_every
        "test_loss": listed(test_loss),
        "test_accuracy": listed(test_accuracy),
        "diverged": diverged.tolist(),
        "diverged_at_step": members.diverged_at.tolist(),
        "best_lr": best_lr(members.lrs, final_loss, diverged),
    }


def _progress(config: TrainConfig, echo: Callable[[str], None]):
    def report(step, alive, losses, seconds, length):
        rate = length / seconds
        running = int(alive.sum())
        best = np.nanmin(losses.mean(-1)) if running else math.nan
        echo(
            f"step {step}/{config.steps} | {running}/{alive.size} runs alive | "
            f"best loss {best:.4f} | {rate:,.0f} steps/s | "
            f"eta {outputs.format_duration((config.steps - step) / rate)}"
        )

    return report


def _silent(_: str) -> None:
    """The echo of processes other than the first."""


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
