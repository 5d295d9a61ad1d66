"""Train a (seed x learning-rate) grid of one model at once and score every member."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optax

import rules
import scaling_data as data
from scaling.point import Schedule


@dataclasses.dataclass(frozen=True, eq=False)
class GridSpec:
    """What every (seed x LR) grid of a probe shares, built once per probe: `model` (a
    ProbeModel or UserModel: `build(width, depth, seed)`) trained with `optimizer` (the
    flag's name, e.g. adamw; the model knows only its family) for `steps` steps of
    `batch_size` examples of `dataset`, from `seeds` seeds (0 .. seeds-1). The weight decay
    (when a grid has one) acts in `weight_decay_mode` with the per-layer width scaling
    `weight_decay_width` (rules/axes.py; "" = the mode's own, decay per step the same at
    every width)."""

    model: Any
    dataset: data.Dataset
    seeds: int
    steps: int
    batch_size: int
    optimizer: str
    weight_decay_mode: str = "coupled"
    weight_decay_width: str = ""


@dataclasses.dataclass
class GridResult:
    """Per member [seed, lr]: final train loss (on a fixed training subset), test accuracy,
    and whether it diverged (its loss is then +inf and its accuracy 0). `tail_loss`: the
    training batches' loss averaged over the last 10% of steps (+inf if diverged)."""

    lrs: list[float]
    train_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged: np.ndarray
    tail_loss: np.ndarray | None = None
    test_loss: np.ndarray | None = None  # after the last step (+inf if diverged)


def train_grid(
    grid: GridSpec,
    width: int,
    depth: int,
    lrs,
    score_examples: int = 2048,
    score: bool = True,
    *,
    schedule: Schedule | None = None,
    weight_decays=None,
):
    """Every (seed, lr) pair of `grid` at (`width`, `depth`) trained in one compiled program.

    `score=False` skips the evaluation passes (train loss on `score_examples`, test
    accuracy and loss; NaN then) for callers that read only `tail_loss`. `schedule`: the
    peak LR's factor per step (None: constant). `weight_decays`: one coupled decay per
    entry of `lrs` (member j trains at (lrs[j], weight_decays[j]); injected like the LR,
    so a grid of both compiles once; coupled or independent as `grid` says); None: no
    decay, the optimizer as before."""
    from scaling_training import engine
    from scaling_training import members as member_runs

    lrs = [float(lr) for lr in lrs]
    seeds, dataset, steps = grid.seeds, grid.dataset, grid.steps
    models = [grid.model.build(width, depth, seed) for seed in range(seeds)]
    splits = [engine.split_model(m) for m in models]
    graphdef = splits[0][0]
    tx = grid_optimizer(grid, models[0], lrs[0], weight_decays)
    if schedule is not None and not schedule.is_constant:
        tx = optax.chain(tx, optax.scale_by_schedule(schedule.factor(steps)))
    members = member_runs.train_members(
        graphdef,
        tx,
        splits,
        member_runs.MemberGrid(
            lrs=tuple(lrs),
            seeds=tuple(range(seeds)),
            dataset=dataset,
            steps=steps,
            batch_size=grid.batch_size,
            log_every=max(1, steps // 10),  # the last chunk is the last 10% of steps
            weight_decays=None if weight_decays is None else tuple(weight_decays),
        ),
    )
    params, rest, _ = members.state
    tail = np.asarray(members.last_losses).mean(-1)
    if not score:
        nan = np.full((seeds, len(lrs)), np.nan)
        diverged = ~members.alive
        return GridResult(lrs, nan, nan, diverged, np.where(diverged, np.inf, tail))
    evaluate = engine.make_evaluate(graphdef, member_axes=1)
    subset = slice(0, score_examples)
    train_loss, _ = evaluate(params, rest, dataset.x_train[subset], dataset.y_train[subset])
    test_loss, test_accuracy = evaluate(params, rest, dataset.x_test, dataset.y_test)
    train_loss, test_accuracy = members.grid(train_loss), members.grid(test_accuracy)
    test_loss = members.grid(test_loss)
    diverged = ~members.alive | ~np.isfinite(train_loss)
    return GridResult(
        lrs=lrs,
        train_loss=np.where(diverged, np.inf, train_loss),
        test_accuracy=np.where(diverged, 0.0, test_accuracy),
        diverged=diverged,
        tail_loss=np.where(diverged, np.inf, tail),
        test_loss=np.where(diverged | ~np.isfinite(test_loss), np.inf, test_loss),
    )


def grid_optimizer(grid: GridSpec, model, lr: float, weight_decays=None):
    """The rule's optimizer for `model` with the LR injected, and the weight decay too when
    swept (`weight_decays[0]` its initial value), in `grid`'s decay mode and width scaling."""
    if weight_decays is None:
        return rules.optimizer(grid.optimizer, lr, rules.param_scales(model), inject=True)
    from rules.axes import decay_width
    from rules.decay import decay_scales

    mode = grid.weight_decay_mode
    scales = decay_scales(model, mode, decay_width(mode, grid.weight_decay_width))
    wd = weight_decays[0]
    return rules.optimizer(
        grid.optimizer, lr, scales, weight_decay=wd, weight_decay_mode=mode, inject=True
    )
