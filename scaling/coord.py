"""Coordinate check: how pre-activations and their changes scale with width.

For each width, a few optimizer steps on one fixed batch; per layer and step the RMS of
the pre-activations and of their change since init, then the slope of log RMS against
log width. Under muP both stay flat (slope ~ 0); under SP the readout and the updates grow.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax

import rules
from scaling import diagnostics
from scaling.capture import make_preactivations
from scaling.fit import fit_exponent
from scaling.inputs import ProbeInputs
from scaling.setup import ProbeModel, layer_order


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def trajectory(model, x, labels, optimizer: str, lr: float, steps: int) -> dict[str, Any]:
    """RMS of each layer's pre-activations and of their change since init, steps 0..steps."""
    apply, params, _ = make_preactivations(model)
    tx = rules.optimizer(optimizer, lr, rules.param_scales(model))

    def loss(p, x, labels):
        logits = apply(p, x)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    # The batch is an argument of the compiled programs, not a constant baked into them, and
    # the RMS are taken in numpy (float64): eager jnp ops compile once per activation shape
    @jax.jit
    def step(p, state, x, labels):
        updates, state = tx.update(jax.grad(loss)(p, x, labels), state, p)
        return optax.apply_updates(p, updates), state

    compiled_forward = jax.jit(lambda p, x: apply(p, x)[1])

    def forward(p) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float64) for k, v in compiled_forward(p, x).items()}

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
            params, state = step(params, state, x, labels)
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
    inputs: ProbeInputs | None = None,
    diagnose: bool = False,
) -> dict[str, Any]:
    """Trajectories at every width (averaged over seeds) and per-layer slopes at the last step.
    `inputs`: where the batch comes from (default: Gaussian inputs, random labels).
    `diagnose`: also the per-parameter diagnostics of the first step (scaling/diagnostics.py)
    at every width, seed-averaged, and their slopes against width."""
    inputs = inputs or ProbeInputs()
    runs, diagnosed = {}, {}
    for width in widths:
        per_seed, first_steps = [], []
        for seed in range(seeds):
            model = spec.build(width, depth, seed)
            x, labels = inputs.batch(spec.input_shape, spec.num_classes, batch, seed)
            per_seed.append(trajectory(model, x, labels, optimizer, lr, steps))
            if diagnose:
                first_steps.append(diagnostics.one_step(model, x, labels, optimizer, lr))
        if diagnose:
            diagnosed[str(width)] = diagnostics.seed_mean(first_steps)
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
    result = {
        "inputs": inputs.describe(),
        "layers": layers,
        "runs": {str(w): r for w, r in runs.items()},
        "slopes": slopes,
    }
    if diagnose:
        result["diagnostics"] = diagnosed
        result["diagnostic_slopes"] = diagnostic_slopes(widths, diagnosed)
    return result | {"verdict": verdict(widths, result)}


FLAT_BAND = 0.2  # |slope| of log RMS against log width over the widest pair that counts as flat


def _pair_slope(widths, values) -> float:
    return float(np.log(values[-1] / values[-2]) / np.log(widths[-1] / widths[-2]))


def diagnostic_slopes(widths, diagnosed: dict) -> dict[str, dict[str, float | None]]:
    """Slope against width of every diagnostic of every parameter (None where undefined)."""
    out = {}
    for key in diagnosed[str(widths[0])]:
        out[key] = {}
        for field in diagnostics.FIELDS:
            values = [diagnosed[str(w)][key][field] for w in widths]
            ok = all(v is not None and v > 0 for v in values)
            out[key][field] = fit_exponent(widths, values)[0] if ok else None
    return out


def verdict(widths, result: dict, band: float = FLAT_BAND) -> dict[str, Any]:
    """ "flat" when, over the two widest widths, the slope of every layer's activation RMS
    and change RMS lies within +-band; else "not flat", naming the layers that grow (slope
    > band) or vanish (< -band) and in which quantity. A layer whose change is exactly zero
    at both widths (it cannot move, e.g. a frozen layer) counts as flat. The readout's
    activation is not counted as vanishing: muP-like rules make its initial value vanish
    like width^-1/2 by design, and it dominates after a few small steps; its change (and its
    activation growing) still counts. Such a slope is listed under "not_judged"."""
    pair = [int(w) for w in widths[-2:]]
    grow, vanish, not_judged, slopes = [], [], [], {}
    for layer in result["layers"]:
        slopes[layer] = {}
        for kind in ("activation", "change"):
            values = [result["runs"][str(w)][kind][layer][-1] for w in pair]
            if min(values) <= 0:
                slope = 0.0 if max(values) == 0 else (np.inf if values[1] > 0 else -np.inf)
            else:
                slope = _pair_slope(pair, values)
            slopes[layer][kind] = slope
            if slope > band:
                grow.append(f"{layer} ({kind} {slope:+.2f})")
            elif slope < -band and kind == "activation" and layer.startswith("output"):
                not_judged.append(f"{layer} ({kind} {slope:+.2f})")
            elif slope < -band:
                vanish.append(f"{layer} ({kind} {slope:+.2f})")
    return {
        "verdict": "flat" if not grow and not vanish else "not flat",
        "band": band,
        "widest_pair": pair,
        "grow": grow,
        "vanish": vanish,
        "not_judged": not_judged,
        "pair_slopes": slopes,
    }


def verdict_line(v: dict) -> str:
    """One line for the printed table."""
    head = (
        f"verdict: {v['verdict']} (every layer's slope over widths {v['widest_pair'][0]} -> "
        f"{v['widest_pair'][1]} within +-{v['band']:g})"
    )
    if v["grow"]:
        head += "\n  grow: " + ", ".join(v["grow"])
    if v["vanish"]:
        head += "\n  vanish: " + ", ".join(v["vanish"])
    if v.get("not_judged"):
        head += (
            "\n  not judged (the readout's initial output vanishes by design under muP): "
            + ", ".join(v["not_judged"])
        )
    return head
