"""A run from its settings: validate -> workdir -> dataset -> a single run or a sweep."""

from __future__ import annotations

from collections.abc import Callable

import scaling_data as data
from scaling_training import datasets
from scaling_training.config import TrainConfig, sweep_lrs
from scaling_training.errors import ConfigError
from scaling_training.results import RunResult
from scaling_training.validation import validate

__all__ = ["RunResult", "load_dataset", "train"]


def load_dataset(config: TrainConfig) -> data.Dataset:
    """The run's dataset (scaling_training/datasets.py), checked against the model's patch
    grid and the batch size; ConfigError naming the flag otherwise."""
    dataset = datasets.load(config.dataset_name, config.data_dir, config.seq_len)
    if config.model.name == "vit":
        from zoo.vit import patch_grid

        try:
            patch_grid(dataset.input_shape, config.model.patch_size)
        except ValueError as e:
            raise ConfigError("patch_size", f"{e} ({dataset.name})") from None
    if config.batch_size > len(dataset.x_train):
        raise ConfigError(
            "batch_size",
            f"{config.batch_size} exceeds the {len(dataset.x_train)} training examples",
        )
    return dataset


def train(config: TrainConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Train `config` and write its outputs to its workdir (scaling_training/single.py), or, with
    `--lrs`, train every (lr, seed) pair at once (scaling_training/sweep.py).

    Bad settings raise ConfigError naming the flag, before anything in the workdir changes.
    """
    import jax

    from scaling_training import fits
    from scaling_training import workdir as workdir_lock
    from scaling_training.recipe import check_augmentation

    config = validate(config)  # fills in the model's defaults
    if jax.process_index() == 0:
        from scaling_training.transfer import describe

        for line in describe(config):  # --transfer_from, --base_steps, ...: the derivation
            echo(line)
    dataset = load_dataset(config)
    check_augmentation(config, dataset)
    fits.check_fits(config, dataset.input_shape, dataset.num_classes)
    lead = jax.process_index() == 0  # one process writes files and prints
    # One run per workdir; a run failing before its first output leaves the workdir as it was.
    with workdir_lock.hold(config.workdir_path, enabled=lead) as stale:
        if stale:
            echo(f"took over the lock of a run that died ({stale}) in {config.workdir_path}")
        return _run(config, dataset, echo)


def _run(config: TrainConfig, dataset: data.Dataset, echo: Callable[[str], None]) -> RunResult:
    """train()'s body, with the config validated and the workdir locked."""
    if sweep_lrs(config):
        from scaling_training.sweep import run_sweep

        return run_sweep(config, dataset, echo)
    from scaling_training.single import run_single

    return run_single(config, dataset, echo)
