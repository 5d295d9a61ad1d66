"""Coordinate check: how pre-activations and their changes scale with width.

For each width, a few optimizer steps on one fixed batch; per layer and step the RMS of
the pre-activations and of their change since init, then the slope of log RMS against
log width. Under muP both stay flat (slope ~ 0); under SP the readout and the updates grow.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rules
from scaling.capture import make_preactivations
from scaling.fit import fit_exponent
from scaling.setup import ProbeModel, layer_order, normalized_inputs


def _rms(x: jax.Array) -> float:
    return float(jnp.sqrt(jnp.mean(x**2)))


def trajectory(model, x, labels, optimizer: str, lr: float, steps: int) -> dict[str, Any]:
    """RMS of each layer's pre-activations and of their change since init, steps 0..steps."""
    apply, params, _ = make_preactivations(model)
    tx = rules.scaled_optimizer(optimizer, lr, rules.param_scales(model))

    def loss(p):
        logits = apply(p, x)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(p, state):
        updates, state = tx.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    forward = jax.jit(lambda p: apply(p, x)[1])
    initial, state = forward(params), tx.init(params)
    layers = sorted(initial, key=layer_order)
    activation = {k: [] for k in layers}
    change = {k: [] for k in layers}
    for t in range(steps + 1):
        current = forward(params)
        for k in layers:
            activation[k].append(_rms(current[k]))
            change[k].append(_rms(current[k] - initial[k]))
        if t < steps:
            params, state = step(params, state)
    return {"layers": layers, "activation": activation, "change": change}


def measure(
    spec: ProbeModel,
    widths,
    depth: int,
    seeds: int,
    lr: float,
    steps: int,
    optimizer: str,
    batch: int = 32,
) -> dict[str, Any]:
    """Trajectories at every width (averaged over seeds) and per-layer slopes at the last step."""
    runs = {}
    for width in widths:
        per_seed = []
        for seed in range(seeds):
            model = spec.build(width, depth, seed)
            x = normalized_inputs(spec.input_shape, batch, 1000 + seed)
            labels = jax.random.randint(jax.random.key(seed), (batch,), 0, spec.num_classes)
            per_seed.append(trajectory(model, x, labels, optimizer, lr, steps))
        layers = per_seed[0]["layers"]
        runs[width] = {
            kind: {k: np.mean([r[kind][k] for r in per_seed], axis=0).tolist() for k in layers}
            for kind in ("activation", "change")
        }
    slopes = {
        k: {
            kind: fit_exponent(widths, [runs[w][kind][k][-1] for w in widths])[0]
            for kind in ("activation", "change")
        }
        for k in layers
    }
    return {"layers": layers, "runs": {str(w): r for w, r in runs.items()}, "slopes": slopes}
