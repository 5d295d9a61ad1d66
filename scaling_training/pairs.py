"""Which model trains on which dataset, decided from names alone (before any data loads or
anything in the workdir moves).

A dataset's inputs are one of three kinds: "vector" (a 1D signal or features, [length]),
"image" ([height, width, channels]) or "text" (integer token windows whose labels are the
next token at every position). A model reads the kinds of `MODEL_INPUTS`: the convolutions
need their rank, the language model needs tokens, and only it predicts a token per position.
tests/test_hostile_inputs.py checks the table against every model built on every dataset.
"""

from __future__ import annotations

import scaling_data as data

# Offline sets by kind; every tensorflow-datasets set is an image set, every text set text.
VECTOR_SETS = frozenset({"mnist1d", "teacher", "two_gaussians"})
IMAGE_SETS = frozenset({"digits"})

MODEL_INPUTS: dict[str, frozenset[str]] = {
    "mlp": frozenset({"vector", "image"}),
    "resmlp": frozenset({"vector", "image"}),
    "cnn1d": frozenset({"vector"}),
    "cnn2d": frozenset({"image"}),
    "resnet": frozenset({"image"}),
    "lm": frozenset({"text"}),
    "vit": frozenset({"vector", "image"}),
}

_WORDS = {
    "vector": "a 1D set (mnist1d, teacher, two_gaussians)",
    "image": "an image set (digits, mnist, fashion_mnist, cifar10, cifar100)",
    "text": "a text set (grammar_text)",
}


def input_kind(dataset: str) -> str:
    """ "vector", "image" or "text" for a known dataset name; ValueError otherwise."""
    if data.is_text(dataset):
        return "text"
    if dataset in VECTOR_SETS:
        return "vector"
    if dataset in IMAGE_SETS or dataset in data.TFDS_DATASETS:
        return "image"
    raise ValueError(f"no input kind known for dataset {dataset!r}")


def pair_problem(model: str, dataset: str) -> str | None:
    """Why `model` cannot train on `dataset` (a message for --dataset), or None."""
    kinds = MODEL_INPUTS[model]
    kind = input_kind(dataset)
    if kind in kinds:
        return None
    wanted = " or ".join(_WORDS[k] for k in sorted(kinds))
    return f"--model={model} needs {wanted}, got {dataset!r} ({kind} inputs)"
