"""Offline datasets, tensorflow-datasets ones, and deterministic batching."""

from __future__ import annotations

from data.dataset import Dataset, batch_indices
from data.sources import SOURCES
from data.tfds_source import TFDS_DATASETS, TfdsMissing, load_tfds


def names() -> list[str]:
    return sorted(SOURCES) + sorted(TFDS_DATASETS)


def load(name: str, data_dir: str = "") -> Dataset:
    """Dataset `name`; ValueError listing the choices for an unknown name, TfdsMissing
    (a ValueError saying how to prepare them) when a tfds dataset's files are absent."""
    if name in TFDS_DATASETS:
        return load_tfds(name, data_dir)
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    return SOURCES[name]()


__all__ = ["Dataset", "TfdsMissing", "batch_indices", "load", "names"]
