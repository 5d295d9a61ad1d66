"""The training run: config in, files in workdir and a result out."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

import data
import rules
import zoo
from training import outputs
from training.config import PADDINGS, ConfigError, TrainConfig, prepare_workdir, validate

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
    )
    return zoo.build(config.model, model_config, rules.get(config.rule), nnx.Rngs(config.seed))


def chunk_lengths(steps: int, log_every: int, eval_every: int) -> list[int]:
    """Split `steps` into scanned chunks that end on every log and eval boundary."""
    boundaries = set(range(log_every, steps, log_every)) | set(range(eval_every, steps, eval_every))
    ends = sorted(boundaries | {steps})
    return [end - start for start, end in zip([0] + ends[:-1], ends)]


def train(config: TrainConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Train `config` and write config.json, metrics.jsonl and summary.json to its workdir."""
    config = validate(config)
    workdir = config.workdir_path
    prepare_workdir(workdir)
    dataset = data.load(config.dataset_name)
    if config.batch_size > len(dataset.x_train):
        raise ConfigError(
            "batch_size",
            f"{config.batch_size} exceeds the {len(dataset.x_train)} training examples",
        )

    import jax.numpy as jnp

    from training.optimizers import make_optimizer
    from training.steps import make_evaluate, make_train_chunk, split_model

    model = build_model(config, dataset)
    echo(dataset.summary())
    echo(rules.describe(model, title=f"rule {config.rule}: {rules.get(config.rule).pipeline}"))
    graphdef, params, rest = split_model(model)
    base_optimizer = make_optimizer(
        config.optimizer, config.lr, config.momentum, config.weight_decay_value
    )
    optimizer = rules.with_lr_multipliers(base_optimizer, rules.lr_multipliers(model))
    opt_state = optimizer.init(params)
    train_chunk, evaluate = make_train_chunk(graphdef, optimizer), make_evaluate(graphdef)

    archived = outputs.archive_previous_run(workdir)
    if archived:
        echo(f"earlier outputs in {workdir} moved to {archived}")
    config_record = dataclasses.asdict(config) | {
        "workdir": workdir,
        "dataset": config.dataset_name,
        "weight_decay": config.weight_decay_value,
    }
    outputs.write_json(os.path.join(workdir, "config.json"), config_record)
    log = outputs.MetricsLog(os.path.join(workdir, "metrics.jsonl"))

    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    start, step, diverged, test = time.perf_counter(), 0, False, {}
    try:
        for length in chunk_lengths(config.steps, config.log_every, config.eval_every):
            chunk_start = time.perf_counter()
            indices = data.batch_indices(len(x_train), config.batch_size, length, config.seed, step)
            params, rest, opt_state, losses, accuracies = train_chunk(
                params, rest, opt_state, x_train, y_train, indices
            )
            losses, accuracies = np.asarray(losses), np.asarray(accuracies)
            bad = np.flatnonzero(~np.isfinite(losses))
            for i in range(bad[0] if bad.size else length):
                log.write(
                    {
                        "step": step + i + 1,
                        "train_loss": float(losses[i]),
                        "train_accuracy": float(accuracies[i]),
                    }
                )
            if bad.size:
                step += int(bad[0]) + 1
                log.write({"step": step, "train_loss": None, "diverged": True})
                diverged = True
                break
            step += length
            test = {}
            if step % config.eval_every == 0 or step == config.steps:
                test_loss, test_accuracy = evaluate(params, rest, dataset.x_test, dataset.y_test)
                test = {"test_loss": test_loss, "test_accuracy": test_accuracy}
                if not np.isfinite(test_loss):
                    log.write({"step": step, "test_loss": None, "diverged": True})
                    diverged = True
                    break
                log.write({"step": step} | test)
            seconds = time.perf_counter() - chunk_start
            rate = length / seconds
            echo(
                outputs.progress_line(
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

    result = RunResult(
        steps_done=step,
        diverged=diverged,
        test_loss=outputs.finite_or_none(test["test_loss"]) if test else None,
        test_accuracy=test.get("test_accuracy"),
        seconds=time.perf_counter() - start,
    )
    outputs.write_json(os.path.join(workdir, "summary.json"), dataclasses.asdict(result))
    if not diverged:
        echo(
            f"done: {step} steps in {result.seconds:.1f} s, test accuracy "
            f"{result.test_accuracy:.4f}, outputs in {workdir}"
        )
    return result
