"""Offline datasets, tensorflow-datasets ones, and deterministic batching."""

from __future__ import annotations

from scaling_data.augment import AUGMENTATIONS, augment_batches, default_augmentation
from scaling_data.dataset import Dataset, batch_indices
from scaling_data.sources import SOURCES
from scaling_data.text import TEXT_SOURCES, TextDataset
from scaling_data.tfds_source import TFDS_DATASETS, TfdsMissing, load_tfds


def names() -> list[str]:
    return sorted(SOURCES) + sorted(TEXT_SOURCES) + sorted(TFDS_DATASETS)


def is_text(name: str) -> bool:
    """Whether `name` is a set of token windows (for language models)."""
    return name in TEXT_SOURCES


def load(name: str, data_dir: str = "", seq_len: int = 64) -> Dataset:
    """Dataset `name`; ValueError listing the choices for an unknown name, TfdsMissing
    (a ValueError saying how to prepare them) when a tfds dataset's files are absent.

    With `data_dir`, the offline sets too go through tensorflow-datasets: prepared once
    as `<name>_offline` array_record files there, then read like any tfds set. Text sets
    are generated in memory as windows of `seq_len` tokens (ValueError when out of range).
    """
    if name in TEXT_SOURCES:
        return TEXT_SOURCES[name](seq_len)
    if name in TFDS_DATASETS:
        return load_tfds(name, data_dir)
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    if data_dir:
        from scaling_data.tfds_builders import offline_builder
        from scaling_data.tfds_source import dataset_from_sources

        builder = offline_builder(name, data_dir)
        num_classes = builder.info.features["label"].num_classes
        train, test = (builder.as_data_source(split=s) for s in ("train", "test"))
        return dataset_from_sources(name, train, test, "label", num_classes)
    return SOURCES[name]()


__all__ = [
    "AUGMENTATIONS",
    "Dataset",
    "TextDataset",
    "TfdsMissing",
    "augment_batches",
    "batch_indices",
    "default_augmentation",
    "is_text",
    "load",
    "names",
]
