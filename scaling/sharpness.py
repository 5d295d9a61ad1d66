"""Sharpness at init: the top eigenvalue of the loss Hessian by power iteration on
Hessian-vector products (forward-over-reverse), in the rule's preconditioned geometry.

With per-parameter LR multipliers M, gradient descent sees M^(1/2) H M^(1/2); its top
eigenvalue lambda_1 bounds the stable global LR by about 2 / lambda_1.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

import rules
from scaling_training.engine import split_model


def _dot(a, b) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def top_eigenvalue(model, x, labels, iterations: int = 50, seed: int = 0) -> float:
    """lambda_1 of M^(1/2) H M^(1/2) for the cross-entropy on (x, labels)."""
    from flax import nnx

    graphdef, params, rest = split_model(model)
    root = jax.tree.map(jnp.sqrt, rules.lr_multipliers(model))

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def hvp(v):
        scaled = jax.tree.map(lambda a, r: a * r, v, root)
        hv = jax.jvp(jax.grad(loss), (params,), (scaled,))[1]
        return jax.tree.map(lambda a, r: a * r, hv, root)

    @jax.jit
    def iterate(v):
        hv = hvp(v)
        eigenvalue = _dot(v, hv)
        norm = jnp.sqrt(_dot(hv, hv))
        return jax.tree.map(lambda a: a / norm, hv), eigenvalue

    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    v = jax.tree.unflatten(treedef, [jax.random.normal(k, p.shape) for k, p in zip(keys, leaves)])
    norm = jnp.sqrt(_dot(v, v))
    v = jax.tree.map(lambda a: a / norm, v)
    eigenvalue = 0.0
    for _ in range(iterations):
        v, eigenvalue = iterate(v)
    return float(eigenvalue)


def measure(
    spec, widths, depths, seeds: int, batch: int = 128, iterations: int = 50, dataset=None
) -> dict:
    """lambda_1 and 2 / lambda_1 for every (width, depth), `seeds` inits each, on the first
    `batch` training examples of `dataset` (or normalised Gaussian inputs, random labels)."""
    from scaling.setup import normalized_inputs

    results: list[dict[str, Any]] = []
    for width in widths:
        for depth in depths:
            values = []
            for seed in range(seeds):
                model = spec.build(width, depth, seed)
                if dataset is not None:
                    x, labels = dataset.x_train[:batch], dataset.y_train[:batch]
                else:
                    x = normalized_inputs(spec.input_shape, batch, 1000 + seed)
                    labels = jax.random.randint(jax.random.key(seed), (batch,), 0, spec.num_classes)
                values.append(top_eigenvalue(model, x, labels, iterations, seed))
            results.append(
                {
                    "width": width,
                    "depth": depth,
                    "lambda1": values,
                    "two_over_lambda1": [2 / v for v in values],
                }
            )
    return {"results": results}
