"""The training run: config in, files in workdir and a result out."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable

import numpy as np

import data
import rules
import zoo
from training import outputs, progress
from training.config import PADDINGS, ConfigError, TrainConfig, prepare_workdir, sweep_lrs, validate

EXIT_DIVERGED = 3


@dataclasses.dataclass
class RunResult:
    steps_done: int
    diverged: bool
    test_loss: float | None
    test_accuracy: float | None
    seconds: float


def build_model(config: TrainConfig, dataset: data.Dataset):
    """The zoo model for `config`, built with its rule and seeded from `config.seed`."""
    from flax import nnx

    model_config = zoo.ModelConfig(
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        width=config.width,
        depth=config.depth,
        base_width=config.base_width,
        base_depth=config.base_depth,
        activation=config.activation,
        use_bias=config.bias,
        optimizer=config.optimizer_family,
        normalization=config.normalization,
        dropout=config.dropout,
        kernel_size=config.kernel_size,
        padding=PADDINGS[config.padding],
        **transformer_options(config),
    )
    return zoo.build(config.model, model_config, rules.get(config.rule), nnx.Rngs(config.seed))


def transformer_options(config: TrainConfig) -> dict:
    """ModelConfig fields of lm and vit (other models ignore them)."""
    names = ("heads", "head_dim", "mlp_ratio", "positions", "tied", "pooling", "patch_size")
    return {name: getattr(config, name) for name in names}


def chunk_lengths(steps: int, *every: int, start: int = 0) -> list[int]:
    """Split steps (start, steps] into scanned chunks ending on every multiple of each `every`
    (log, eval, checkpoint; 0 = never), so a resume at a checkpoint sees the same chunks."""
    boundaries = {steps}
    for n in every:
        if n > 0:
            boundaries |= set(range(n, steps, n))
    ends = sorted(b for b in boundaries if b > start)
    return [end - begin for begin, end in zip([start] + ends[:-1], ends)]


def config_record(config: TrainConfig) -> dict:
    """config.json's content: every setting, with defaults resolved."""
    return dataclasses.asdict(config) | {
        "workdir": config.workdir_path,
        "dataset": config.dataset_name,
        "weight_decay": config.weight_decay_value,
    }


def load_dataset(config: TrainConfig) -> data.Dataset:
    try:
        dataset = data.load(config.dataset_name, config.data_dir, seq_len=config.seq_len)
    except data.TfdsMissing as e:
        raise ConfigError("dataset" if not config.data_dir else "data_dir", str(e)) from None
    if config.model == "vit":
        from zoo.vit import patch_grid

        try:
            patch_grid(dataset.input_shape, config.patch_size)
        except ValueError as e:
            raise ConfigError("patch_size", f"{e} ({dataset.name})") from None
    if config.batch_size > len(dataset.x_train):
        raise ConfigError(
            "batch_size",
            f"{config.batch_size} exceeds the {len(dataset.x_train)} training examples",
        )
    return dataset


def train(config: TrainConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Train `config` and write config.json, metrics.jsonl and summary.json to its workdir.

    Resumes from the newest checkpoint of an unfinished run in the same workdir; a run with
    `--lrs` is a vmapped sweep (training/sweep.py).
    """
    import jax

    config = validate(config)  # fills in the model's defaults
    workdir = config.workdir_path
    lead = jax.process_index() == 0  # one process writes files and prints
    if lead:
        prepare_workdir(workdir)
    dataset = load_dataset(config)
    if sweep_lrs(config):
        from training.sweep import run_sweep

        return run_sweep(config, dataset, echo)

    from training.optimizers import make_optimizer
    from training.sharding import make_plan
    from training.steps import make_evaluate, make_train_chunk, split_model

    if not lead:
        echo = _silent
    plan = make_plan(config.mesh, config.fsdp, config.batch_size)
    model = build_model(config, dataset)
    try:
        rules.check(rules.get(config.rule), rules.param_metas(model))
    except rules.RuleError as e:
        raise ConfigError("rule", f"{e} (--model={config.model})") from None
    echo(dataset.summary())
    echo(rules.describe(model, title=f"rule {config.rule}: {rules.get(config.rule).pipeline}"))
    echo(plan.describe())
    graphdef, params, rest = split_model(model)
    optimizer = make_optimizer(
        config.optimizer,
        config.lr,
        rules.param_scales(model),
        config.momentum,
        config.weight_decay_value,
    )
    state = {"params": params, "rest": rest, "opt_state": optimizer.init(params)}
    shardings = {
        "params": plan.param_shardings(params),
        "rest": jax.tree.map(lambda _: plan.replicated, rest),
        "opt_state": plan.param_shardings(state["opt_state"]),
    }
    train_chunk, evaluate = make_train_chunk(graphdef, optimizer), make_evaluate(graphdef)
    record = config_record(config)
    metrics_path = os.path.join(workdir, "metrics.jsonl")

    # Resume an unfinished run, or archive a finished one and start afresh. Every check
    # that can fail comes before anything in the workdir changes.
    checkpoints, start_step = None, 0
    if config.checkpoint_every:
        from training.checkpoint import Checkpoints, check_same_config

        checkpoints = Checkpoints(workdir, config.keep_checkpoints)
        latest = checkpoints.latest_step()
        if latest is not None:
            meta = checkpoints.read_meta(latest)
            if meta["step"] < meta["config"]["steps"]:
                check_same_config(meta["config"], json.loads(json.dumps(record)), workdir)
                state = checkpoints.restore_state(latest, state, shardings)
                start_step = latest
        if start_step == 0:
            checkpoints.close()
            checkpoints = None
    if start_step:
        echo(f"resuming from the checkpoint of step {start_step} in {workdir}")
        if lead:
            progress.truncate_metrics(metrics_path, start_step)
    else:
        state = plan.place(state, shardings)
        if lead:
            archived = outputs.archive_previous_run(workdir)
            if archived:
                echo(f"earlier outputs in {workdir} moved to {archived}")
            outputs.write_json(os.path.join(workdir, "config.json"), record)
        if config.checkpoint_every:
            from training.checkpoint import Checkpoints

            checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    log = outputs.MetricsLog(metrics_path) if lead else _NullLog()
    board = (
        progress.TensorBoard(workdir, start_step or None) if lead and config.tensorboard else None
    )

    def write(entry: dict) -> None:
        log.write(entry)
        if board:
            board.write(entry)

    params, rest, opt_state = state["params"], state["rest"], state["opt_state"]
    x_test, y_test = plan.place((dataset.x_test, dataset.y_test), plan.replicated)
    start, step, diverged, test = time.perf_counter(), start_step, False, {}
    lengths = chunk_lengths(
        config.steps, config.log_every, config.eval_every, config.checkpoint_every, start=step
    )
    try:
        for length in lengths:
            chunk_start = time.perf_counter()
            indices = data.batch_indices(
                len(dataset.x_train), config.batch_size, length, config.seed, step
            )
            x_batches, y_batches = plan.place_batches(dataset.x_train, dataset.y_train, indices)
            params, rest, opt_state, losses, accuracies = train_chunk(
                params, rest, opt_state, x_batches, y_batches
            )
            losses, accuracies = np.asarray(losses), np.asarray(accuracies)
            bad = np.flatnonzero(~np.isfinite(losses))
            for i in range(bad[0] if bad.size else length):
                write(
                    {
                        "step": step + i + 1,
                        "train_loss": float(losses[i]),
                        "train_accuracy": float(accuracies[i]),
                    }
                )
            if bad.size:
                step += int(bad[0]) + 1
                write({"step": step, "train_loss": None, "diverged": True})
                diverged = True
                break
            step += length
            test = {}
            if step % config.eval_every == 0 or step == config.steps:
                test_loss, test_accuracy = evaluate(params, rest, x_test, y_test)
                test = {"test_loss": test_loss, "test_accuracy": test_accuracy}
                test |= {f"test_{k}": v for k, v in dataset.extra_metrics(test_loss).items()}
                if not np.isfinite(test_loss):
                    write({"step": step, "test_loss": None, "diverged": True})
                    diverged = True
                    break
                write({"step": step} | test)
            # Never a diverged state: the checks above broke out before this.
            if checkpoints and (step % config.checkpoint_every == 0 or step == config.steps):
                checkpoints.save(
                    step,
                    {"params": params, "rest": rest, "opt_state": opt_state},
                    {"config": record},
                )
            seconds = time.perf_counter() - chunk_start
            rate = length / seconds
            if test or step % config.log_every == 0 or step == config.steps:
                echo(
                    progress.progress_line(
                        step,
                        config.steps,
                        float(losses.mean()),
                        float(accuracies.mean()),
                        rate,
                        (config.steps - step) / rate,
                        test,
                    )
                )
    finally:
        log.close()
        if board:
            board.close()
        if checkpoints:
            checkpoints.close()

    result = RunResult(
        steps_done=step,
        diverged=diverged,
        test_loss=outputs.finite_or_none(test["test_loss"]) if test else None,
        test_accuracy=test.get("test_accuracy"),
        seconds=time.perf_counter() - start,
    )
    if lead:
        outputs.write_json(os.path.join(workdir, "summary.json"), dataclasses.asdict(result))
        if config.plots:
            progress.plot_metrics(metrics_path, os.path.join(workdir, "metrics.png"))
    if not diverged:
        echo(
            f"done: {step} steps in {result.seconds:.1f} s, test accuracy "
            f"{result.test_accuracy:.4f}{_bits_per_byte(test)}, outputs in {workdir}"
        )
    return result


def _bits_per_byte(test: dict) -> str:
    bits = test.get("test_bits_per_byte")
    return "" if bits is None else f", test loss {test['test_loss']:.4f} = {bits:.4f} bits per byte"


def _silent(_: str) -> None:
    """The echo of processes other than the first."""


class _NullLog:
    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass
