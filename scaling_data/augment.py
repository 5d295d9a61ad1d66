"""Standard image augmentation on the host: random crop with zero padding, horizontal flip.

The augmentation of example j in the batch of step s depends only on (seed, s, j), like
the batch order (`batch_indices`), so a run is deterministic for a seed and resumes
exactly at any step, whichever process gathers the example.
"""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("none", "flip", "crop", "crop_flip")
# Sets whose images a horizontal flip or a small shift leaves in their class (natural
# photos); digits and letters change meaning when mirrored, so they default to none.
NATURAL_IMAGES = ("cifar10", "cifar100")
_STREAM = 0x6A7  # keeps these draws apart from the batch order's default_rng([seed, epoch])


def default_augmentation(dataset: str) -> str:
    return "crop_flip" if dataset in NATURAL_IMAGES else "none"


def crop_padding(height: int) -> int:
    """4 pixels for 32x32 images (the CIFAR standard), 1/8 of the side in general."""
    return max(1, height // 8)


def augment_batches(
    x: np.ndarray,
    kind: str,
    seed: int,
    first_step: int,
    batch_size: int,
    columns: slice = slice(None),
) -> np.ndarray:
    """`x` [K, B', H, W, C]: the examples `columns` of the batches of steps first_step ..
    first_step + K - 1 (whole batches hold `batch_size` examples), augmented by `kind`."""
    if kind == "none":
        return x
    if kind not in AUGMENTATIONS:
        raise ValueError(
            f"unknown augmentation {kind!r}; choose one of: {', '.join(AUGMENTATIONS)}"
        )
    if x.ndim != 5:
        raise ValueError(f"augmentation {kind!r} needs images [H, W, C], got shape {x.shape[2:]}")
    height, width = x.shape[2:4]
    pad = crop_padding(height)
    out = np.empty_like(x)
    for k in range(x.shape[0]):
        rng = np.random.default_rng([seed, first_step + k, _STREAM])
        # Drawn for the whole batch, then sliced: the same example gets the same draw
        # whichever process gathers it.
        offsets = rng.integers(0, 2 * pad + 1, size=(batch_size, 2))[columns]
        flips = (rng.random(batch_size) < 0.5)[columns]
        images = x[k]
        if "crop" in kind:
            padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
            rows = offsets[:, 0, None] + np.arange(height)
            cols = offsets[:, 1, None] + np.arange(width)
            examples = np.arange(len(images))[:, None, None]
            images = padded[examples, rows[:, :, None], cols[:, None, :]]
        if "flip" in kind:
            images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        out[k] = images
    return out
