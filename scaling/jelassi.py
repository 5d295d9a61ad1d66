"""A float64 numpy reference for one-step update sizes in ReLU MLPs (Jelassi et al. 2023).

Protocol of the paper: one example, loss 1/2 |f - y|^2, SGD with one LR for every layer.
`update_sizes` gives C_l = E[dz_l^2] / eta^2 for layers input, hidden/0.., output of a
bias-free MLP whose weights are given as (fan_in, fan_out) matrices, exactly to first order
(forward-mode propagation of the weight changes), with per-layer LR multipliers.
"""

from __future__ import annotations

import numpy as np


def update_sizes(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr_multipliers=None):
    """{layer: C_l} for h -> relu(h @ W) ... -> h @ W_out, first order in eta (float64)."""
    weights = [np.asarray(w, np.float64) for w in weights]
    multipliers = lr_multipliers or [1.0] * len(weights)
    x, y = np.asarray(x, np.float64).reshape(1, -1), np.asarray(y, np.float64).reshape(1, -1)
    inputs, pre = [], []
    h = x
    for i, w in enumerate(weights):
        inputs.append(h)
        z = h @ w
        pre.append(z)
        h = np.maximum(z, 0.0) if i < len(weights) - 1 else z
    grad = h - y  # d loss / d f
    grads = [None] * len(weights)
    for i in reversed(range(len(weights))):
        grads[i] = inputs[i].T @ grad
        grad = (grad @ weights[i].T) * (pre[i - 1] > 0) if i > 0 else None
    changes, d_input = [], np.zeros_like(x)
    for i, w in enumerate(weights):
        dz = inputs[i] @ (-multipliers[i] * grads[i]) + d_input @ w
        changes.append(dz)
        d_input = dz * (pre[i] > 0)
    names = ["input"] + [f"hidden/{k}" for k in range(len(weights) - 2)] + ["output"]
    return {n: float(np.mean(dz**2)) for n, dz in zip(names, changes)}


def mean_field_weights(width: int, depth: int, inputs: int, outputs: int, seed: int):
    """He input and hidden weights, readout variance 1/width^2 (the paper's init)."""
    rng = np.random.default_rng(seed)
    shapes = [(inputs, width)] + [(width, width)] * (depth - 1) + [(width, outputs)]
    stds = [np.sqrt(1 / inputs)] + [np.sqrt(2 / width)] * (depth - 1) + [1 / width]
    return [rng.normal(0, s, shape) for s, shape in zip(stds, shapes)]


def eta_star(sizes: dict[str, float], layers: str = "hidden") -> float:
    """sqrt(1 / max C_l) over the layers whose name starts with `layers` ("" = all)."""
    return float(1 / np.sqrt(max(v for k, v in sizes.items() if k.startswith(layers))))
