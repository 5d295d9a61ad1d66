"""Offline datasets and deterministic batching."""

from __future__ import annotations

from data.dataset import Dataset, batch_indices
from data.sources import SOURCES


def names() -> list[str]:
    return sorted(SOURCES)


def load(name: str) -> Dataset:
    """Dataset `name`; ValueError listing the choices for an unknown name."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    return SOURCES[name]()


__all__ = ["Dataset", "batch_indices", "load", "names"]
