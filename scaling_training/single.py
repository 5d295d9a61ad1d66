"""One training run: model and optimizer on the mesh -> resume or start -> chunks -> summary."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import rules
import scaling_data as data
from scaling_training import engine, outputs, progress
from scaling_training.config import TrainConfig, config_record
from scaling_training.recipe import build_model, build_optimizer, compute_dtype
from scaling_training.results import RunResult, best_metrics
from scaling_training.sharding import Plan, make_plan


@dataclasses.dataclass
class Setup:
    """Everything a run's chunks need, built before the workdir changes."""

    plan: Plan
    state: dict  # params, rest, opt_state: on the mesh
    shardings: dict
    train_chunk: Callable
    evaluate: Callable
    record: dict  # config.json


def run_single(config: TrainConfig, dataset: data.Dataset, echo: Callable[[str], None]):
    """Train `config` and write config.json, metrics.jsonl and summary.json to its workdir,
    resuming from the newest checkpoint of an unfinished run there."""
    lead = jax.process_index() == 0  # one process writes files and prints
    if not lead:
        echo = _silent
    setup = build(config, dataset, echo)
    checkpoints, start_step, state = resume_or_start(config, setup, lead, echo)
    log = outputs.MetricsLog(_metrics_path(config)) if lead else _NullLog()
    board = None
    if lead and config.tensorboard:
        board = progress.TensorBoard(config.workdir_path, start_step or None)
    try:
        step, diverged, test, seconds = train_chunks(
            config, dataset, setup, state, start_step, checkpoints, _Writer(log, board), echo
        )
    finally:
        log.close()
        if board:
            board.close()
        if checkpoints:
            checkpoints.close()
    return finish(config, step, diverged, test, seconds, lead, echo)


def build(config: TrainConfig, dataset: data.Dataset, echo: Callable[[str], None]) -> Setup:
    """Mesh, model, optimizer and compiled functions; prints what the run will train."""
    plan = make_plan(config.mesh, config.fsdp, config.batch_size)
    model = build_model(config, dataset)
    echo(dataset.summary())
    echo(rules.describe(model, title=f"rule {config.rule}: {rules.get(config.rule).pipeline}"))
    echo(plan.describe())
    graphdef, params, rest = engine.split_model(model)
    optimizer = build_optimizer(config, model)
    state = {"params": params, "rest": rest, "opt_state": optimizer.init(params)}
    shardings = {
        "params": plan.param_shardings(params),
        "rest": jax.tree.map(lambda _: plan.replicated, rest),
        "opt_state": plan.param_shardings(state["opt_state"]),
    }
    dtype = compute_dtype(config)
    return Setup(
        plan=plan,
        state=state,
        shardings=shardings,
        train_chunk=engine.make_train_chunk(graphdef, optimizer, dtype),
        evaluate=engine.make_evaluate(graphdef, compute_dtype=dtype),
        record=config_record(config),
    )


def resume_or_start(config: TrainConfig, setup: Setup, lead: bool, echo):
    """(checkpoints or None, start step, state on the mesh): the newest checkpoint of an
    unfinished run, or a fresh start with earlier outputs archived. Every check that can
    fail comes before anything in the workdir changes."""
    workdir = config.workdir_path
    if config.checkpoint_every:
        from scaling_training.checkpoint import Checkpoints, check_same_config

        checkpoints = Checkpoints(workdir, config.keep_checkpoints)
        latest = checkpoints.latest_step()
        if latest is not None:
            meta = checkpoints.read_meta(latest)
            if meta["step"] < meta["config"]["steps"]:
                check_same_config(meta["config"], json.loads(json.dumps(setup.record)), workdir)
                state = checkpoints.restore_state(latest, setup.state, setup.shardings)
                echo(f"resuming from the checkpoint of step {latest} in {workdir}")
                if lead:
                    dropped = progress.truncate_metrics(_metrics_path(config), latest)
                    if dropped:
                        echo(
                            f"warning: dropped {dropped} lines of metrics.jsonl that are not "
                            "metrics records"
                        )
                return checkpoints, latest, state
        checkpoints.close()
    state = setup.plan.place(setup.state, setup.shardings)
    if lead:
        archived = outputs.archive_previous_run(workdir)
        if archived:
            echo(f"earlier outputs in {workdir} moved to {archived}")
        outputs.write_json(os.path.join(workdir, "config.json"), setup.record)
    checkpoints = None
    if config.checkpoint_every:
        from scaling_training.checkpoint import Checkpoints

        checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    return checkpoints, 0, state


def train_chunks(config, dataset, setup: Setup, state, step, checkpoints, write, echo):
    """Chunks of steps from `step` to the end or the first non-finite loss; returns
    (steps done, diverged, last test metrics, seconds)."""
    plan = setup.plan
    params, rest, opt_state = state["params"], state["rest"], state["opt_state"]
    x_test, y_test = plan.place((dataset.x_test, dataset.y_test), plan.replicated)
    columns = plan.local_batch_slice(config.batch_size)
    start, test = time.perf_counter(), {}
    lengths = engine.chunk_lengths(
        config.steps,
        config.log_every,
        config.eval_every,
        config.checkpoint_every,
        engine.host_chunk_steps(dataset, config.batch_size),
        start=step,
    )
    for length in lengths:
        chunk_start = time.perf_counter()
        x, y = engine.chunk_batches(
            dataset, config.batch_size, length, config.seed, step, config.augment, columns
        )
        x_batches, y_batches = plan.place_local_batches(x, y, (length, config.batch_size))
        params, rest, opt_state, losses, accuracies = setup.train_chunk(
            params, rest, opt_state, x_batches, y_batches
        )
        losses, accuracies = np.asarray(losses), np.asarray(accuracies)
        bad = np.flatnonzero(~np.isfinite(losses))
        for i in range(bad[0] if bad.size else length):
            write(step + i + 1, train_loss=float(losses[i]), train_accuracy=float(accuracies[i]))
        if bad.size:
            step += int(bad[0]) + 1
            write(step, train_loss=None, diverged=True)
            return step, True, test, time.perf_counter() - start
        step += length
        test = {}
        if step % config.eval_every == 0 or step == config.steps:
            test_loss, test_accuracy = setup.evaluate(params, rest, x_test, y_test)
            test = {"test_loss": test_loss, "test_accuracy": test_accuracy}
            test |= {f"test_{k}": v for k, v in dataset.extra_metrics(test_loss).items()}
            if not np.isfinite(test_loss):
                write(step, test_loss=None, diverged=True)
                return step, True, test, time.perf_counter() - start
            write(step, **test)
        write.sync()  # metrics reach the disk before the checkpoint that covers them
        # Never a diverged state: the checks above returned before this.
        if checkpoints and (step % config.checkpoint_every == 0 or step == config.steps):
            state = {"params": params, "rest": rest, "opt_state": opt_state}
            checkpoints.save(step, state, {"config": setup.record})
        rate = length / (time.perf_counter() - chunk_start)
        if test or step % config.log_every == 0 or step == config.steps:
            mean_loss, mean_accuracy = float(losses.mean()), float(accuracies.mean())
            eta = (config.steps - step) / rate
            echo(
                progress.progress_line(
                    step, config.steps, mean_loss, mean_accuracy, rate, eta, test
                )
            )
    return step, False, test, time.perf_counter() - start


def finish(config: TrainConfig, step, diverged, test, seconds, lead, echo) -> RunResult:
    """summary.json (last and best test metrics) and metrics.png; the run's result."""
    workdir = config.workdir_path
    result = RunResult(
        steps_done=step,
        diverged=diverged,
        test_loss=outputs.finite_or_none(test["test_loss"]) if test else None,
        test_accuracy=test.get("test_accuracy"),
        seconds=seconds,
    )
    if lead:
        best = best_metrics(progress.read_metrics(_metrics_path(config)))
        result = dataclasses.replace(result, **best)
        outputs.write_json(os.path.join(workdir, "summary.json"), dataclasses.asdict(result))
        if config.plots:
            progress.plot_metrics(_metrics_path(config), os.path.join(workdir, "metrics.png"))
    if not diverged:
        echo(
            f"done: {step} steps in {result.seconds:.1f} s, test accuracy "
            f"{result.test_accuracy:.4f}{_bits_per_byte(test)}, outputs in {workdir}"
        )
    return result


def _bits_per_byte(test: dict) -> str:
    bits = test.get("test_bits_per_byte")
    return "" if bits is None else f", test loss {test['test_loss']:.4f} = {bits:.4f} bits per byte"


def _metrics_path(config: TrainConfig) -> str:
    return os.path.join(config.workdir_path, "metrics.jsonl")


class _Writer:
    """write(step, **values): one metrics.jsonl record (and TensorBoard scalars)."""

    def __init__(self, log: Any, board: Any):
        self.log, self.board = log, board

    def __call__(self, step: int, **values) -> None:
        entry = {"step": step} | values
        self.log.write(entry)
        if self.board:
            self.board.write(entry)

    def sync(self) -> None:
        self.log.sync()


def _silent(_: str) -> None:
    """The echo of processes other than the first."""


class _NullLog:
    def write(self, record: dict) -> None:
        pass

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass
