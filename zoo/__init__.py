"""Models that take every layer's init, multiplier and LR multiplier from a rule."""

from zoo.config import NORMALIZATIONS, POOLINGS, POSITIONS, ModelConfig
from zoo.registry import DEFAULT_DATASETS, build, names

__all__ = [
    "DEFAULT_DATASETS",
    "NORMALIZATIONS",
    "POOLINGS",
    "POSITIONS",
    "ModelConfig",
    "build",
    "names",
]
