"""Which depths a model accepts (cheap to import: train.py validates flags with it)."""

from __future__ import annotations


def resnet_blocks_per_stage(depth: int) -> int:
    """n for a CIFAR ResNet of depth 6n+2; ValueError listing valid depths otherwise."""
    if depth < 8 or (depth - 2) % 6:
        valid = ", ".join(str(6 * n + 2) for n in range(1, 10))
        raise ValueError(f"resnet depth must be 6n+2 ({valid}, ..., 110), got {depth}")
    return (depth - 2) // 6


def check_depth(model: str, depth: int) -> None:
    """ValueError if `model` cannot have `depth` (only resnet constrains it)."""
    if model == "resnet":
        resnet_blocks_per_stage(depth)
