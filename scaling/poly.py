"""The exact one-step loss of a deep linear MLP as a polynomial in the learning rate (Hayou 2025).

A linear network with D weight matrices is a degree-D polynomial in each step's LR, so the
MSE after one gradient step is a polynomial of degree 2D in eta. It is recovered exactly
(float64 interpolation at 2D + 1 Chebyshev points) and minimised over eta > 0.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import rules
from scaling.setup import ProbeModel, normalized_inputs
from scaling_training.engine import split_model


def one_step_loss(model, x, y) -> np.polynomial.Polynomial:
    """loss(eta) = 1/2 mean |f(theta - eta M grad) - y|^2 as an exact polynomial in eta."""
    with jax.enable_x64(True):
        graphdef, params, rest = split_model(model)
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
        multipliers = rules.lr_multipliers(model)
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)

        def loss(p, x, y):
            out = nnx.merge(graphdef, p, rest)(x)
            return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))

        # Two compiled programs (eagerly, every op of the gradient and of the vmapped
        # losses compiled on its own), the batch their argument
        @jax.jit
        def first_order(p, x, y):
            grads = jax.grad(loss)(p, x, y)
            direction = jax.tree.map(lambda g, m: -m * g, grads, multipliers)
            pairs = zip(jax.tree.leaves(grads), jax.tree.leaves(direction))
            return direction, loss(p, x, y), -sum(jnp.vdot(g, d) for g, d in pairs)

        @jax.jit
        def along(p, direction, x, y, etas):
            def at(eta):
                return loss(jax.tree.map(lambda q, d: q + eta * d, p, direction), x, y)

            return jax.vmap(at)(etas)

        direction, value, slope = first_order(params, x64, y64)
        scale = float(value / slope)  # where the first-order model reaches zero loss
        degree = 2 * len(jax.tree.leaves(params))
        nodes = (np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1)) + 1) * 2 * scale
        values = np.asarray(along(params, direction, x64, y64, jnp.asarray(nodes)))
    return np.polynomial.Polynomial.fit(nodes, values, degree)


def argmin_positive(poly: np.polynomial.Polynomial) -> float:
    """The eta of lowest loss among the critical points inside the interpolated interval
    (outside it, float64 rounding in the top coefficients invents minima); NaN if none."""
    high = poly.domain[1]
    roots = poly.deriv().roots()
    candidates = [
        r.real for r in roots if abs(r.imag) < 1e-9 * max(1, abs(r)) and 0 < r.real <= high
    ]
    if not candidates:
        return float("nan")
    return float(min(candidates, key=poly))


def measure(spec: ProbeModel, widths, depth: int, seeds: int, batch: int = 16) -> dict[str, Any]:
    """eta_opt (the minimiser of the one-step loss) at every width, `seeds` inits each."""
    if spec.config.activation != "linear" or spec.config.use_bias:
        raise ValueError("poly needs a deep linear MLP: --activation=linear without biases")
    results = []
    for width in widths:
        optima, curves = [], []
        for seed in range(seeds):
            model = spec.build(width, depth, seed)
            x = normalized_inputs(spec.input_shape, batch, 1000 + seed)
            y = jax.random.normal(jax.random.key(2000 + seed), (batch, spec.num_classes))
            poly = one_step_loss(model, x, y)
            optima.append(argmin_positive(poly))
            curves.append(poly.convert().coef.tolist())
        results.append({"width": width, "eta_opt": optima, "coefficients": curves})
    return {"depth": depth, "results": results}
