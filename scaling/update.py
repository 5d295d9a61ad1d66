"""One-step update size per layer and the maximal-update learning rate.

For one SGD step on a single normalised example with loss 1/2 |f - y|^2, the first-order
change of layer l's pre-activations is dz_l = -eta J_l M J^T (f - y) (M the rule's LR
multipliers), computed exactly with one vjp and one jvp. C_l = E[dz_l^2] / eta^2, and the
maximal-update LR is eta* = sqrt(target / C) with C the max (muP, Jelassi et al.) or the
mean (AM-muP) of C_l over layers.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import rules
from scaling.capture import make_preactivations
from scaling.inputs import ProbeInputs, output_shape
from scaling.setup import ProbeModel, layer_order

CRITERIA = ("max", "mean")


def update_sizes(model, x: jax.Array, y: jax.Array) -> dict[str, float]:
    """First-order C_l = mean(dz_l^2) / eta^2 for every rules layer (SGD, the rule's LRs)."""
    graphdef, state = nnx.split(model)
    multipliers = rules.lr_multipliers(model)
    sizes = _compiled_first_order(graphdef, state, multipliers, x, y)
    return {k: float(v) for k, v in sizes.items()}


@functools.partial(jax.jit, static_argnums=0)
def _compiled_first_order(graphdef, state, multipliers, x, y):
    """`_first_order` compiled once per architecture (the graphdef): the seeds of a size
    reuse it, where eager grad + jvp would trace and dispatch every op for each seed."""
    apply, params, _ = make_preactivations(nnx.merge(graphdef, state))
    return _first_order(apply, params, multipliers, x, y)


def _first_order(apply, params, multipliers, x, y):
    def loss(p):
        return 0.5 * jnp.sum((apply(p, x)[0] - y) ** 2)

    grads = jax.grad(loss)(params)
    direction = jax.tree.map(lambda g, m: -m * g, grads, multipliers)
    _, changes = jax.jvp(lambda p: apply(p, x)[1], (params,), (direction,))
    return {name: jnp.mean(dz**2) for name, dz in changes.items()}


def real_step_sizes(model, x: jax.Array, y: jax.Array, lr: float) -> dict[str, float]:
    """C_l from an actual SGD step of size `lr` (equals update_sizes as lr -> 0)."""
    apply, params, _ = make_preactivations(model)
    multipliers = rules.lr_multipliers(model)
    grads = jax.grad(lambda p: 0.5 * jnp.sum((apply(p, x)[0] - y) ** 2))(params)
    stepped = jax.tree.map(lambda p, g, m: p - lr * m * g, params, grads, multipliers)
    before, after = apply(params, x)[1], apply(stepped, x)[1]
    return {k: float(jnp.mean((after[k] - before[k]) ** 2) / lr**2) for k in before}


def layer_groups(sizes: dict[str, float]) -> dict[str, float]:
    """Per-layer values grouped so that models of different depths compare: input, the
    largest and the mean hidden layer, output."""
    ends = {k.split("/")[0]: k for k in sizes if k.split("/")[0] in ("input", "output")}
    hidden = [v for k, v in sizes.items() if k not in ends.values()]
    grouped = {role: sizes[k] for role, k in sorted(ends.items(), key=lambda e: e[0] != "input")}
    if hidden:
        grouped |= {"hidden (max)": max(hidden), "hidden (mean)": float(np.mean(hidden))}
    return grouped


def max_update_lr(sizes: dict[str, float], criterion: str = "max", target: float = 1.0) -> float:
    """eta* = sqrt(target / C), C the max or mean of the per-layer C_l."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    values = np.array(list(sizes.values()))
    return float(np.sqrt(target / (values.max() if criterion == "max" else values.mean())))


def measure(
    spec: ProbeModel, widths, depths, seeds: int, inputs: ProbeInputs | None = None
) -> dict[str, Any]:
    """C_l and eta* for every (width, depth) pair, `seeds` inits and examples each; the
    example from `inputs` (default Gaussian), the target Gaussian of the output's shape."""
    inputs = inputs or ProbeInputs()
    results = []
    for width in widths:
        for depth in depths:
            per_seed = []
            for seed in range(seeds):
                model = spec.build(width, depth, seed)
                x, _ = inputs.batch(spec.input_shape, spec.num_classes, 1, seed)
                y = jax.random.normal(jax.random.key(2000 + seed), output_shape(model, x))
                per_seed.append(update_sizes(model, x, y))
            layers = sorted(per_seed[0], key=layer_order)
            sizes = {k: float(np.mean([s[k] for s in per_seed])) for k in layers}
            results.append(
                {
                    "width": width,
                    "depth": depth,
                    "layers": layers,
                    "C": sizes,
                    "C_per_seed": [[s[k] for k in layers] for s in per_seed],
                    "eta_star": {c: [max_update_lr(s, c) for s in per_seed] for c in CRITERIA},
                }
            )
    return {"inputs": inputs.describe(), "results": results}
