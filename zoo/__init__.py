"""Models that take every layer's init, multiplier and LR multiplier from a rule."""

from zoo.config import NORMALIZATIONS, POOLINGS, POSITIONS, TRANSFORMERS, ModelConfig
from zoo.registry import DEFAULT_DATASETS, build, names

__all__ = [
    "DEFAULT_DATASETS",
    "NORMALIZATIONS",
    "POOLINGS",
    "POSITIONS",
    "TRANSFORMERS",
    "ModelConfig",
    "build",
    "names",
]
