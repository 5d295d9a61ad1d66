"""Per-layer diagnostics of one real optimizer step: relative update size, alignment, effective LR.

For every weight W (a stacked weight [K, ...] counts as K layers, `name/k`) and the update
dW = W_after - W_before of one step of the rule's optimizer on a batch:

- `rel_update_fro` = ||dW||_F / ||W||_F.
- `rel_update_spectral` = ||dW||_2 / ||W||_2, spectral norms of the matrix [fan_in, fan_out]
  (leading axes but the last folded into rows; a vector's is its Euclidean norm).
- `effective_lr` = ||dW||_F / ||g||_F with g the loss gradient at W: the step per unit of
  gradient, i.e. the LR multiplier times the optimizer's own per-step scale (SGD: exactly
  lr x multiplier; Adam: lr x multiplier x ||Adam direction|| / ||g||). `lr_multiplier` is
  the rule's number, for comparison.
- `alignment_ratio` (Everett et al. 2024's question: how much of an update's effect on a
  layer's output comes from alignment with its input). For a layer y = m x W (+ bias) with
  input x, let J(E) = m x E be the change of the layer's own output caused by a weight
  change E alone (computed exactly as a jvp of the model in the direction E placed on W
  only). Then
      alignment_ratio = (||J(dW)||_F / ||dW||_F) / (||J(W)||_F / ||W||_F),
  how many times more the update moves the layer's output than a change of the same norm
  shaped like the weights themselves. At init W is independent of x, so ||J(W)||_F ~=
  m ||x||_F ||W||_F / sqrt(fan_in) and the ratio is sqrt(fan_in) times the normalised
  alignment ||x dW||_F / (||x||_F ||dW||_F) (at most 1). Hence
      alignment_exponent = 1/2 + log(alignment_ratio) / log(fan_in),
  Everett et al.'s log-alignment exponent for that reading: 1/2 for an update independent
  of the input (central-limit scaling), 1 for an update fully aligned with it (law of
  large numbers, muP's assumption for SGD and Adam). Layers whose own output the probes do
  not capture (embedding tables added as rows) get None.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
import optax

import rules
from scaling.capture import make_preactivations

FIELDS = ("rel_update_fro", "rel_update_spectral", "alignment_ratio", "effective_lr")


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _matrix(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)


def _spectral(a: np.ndarray) -> float:
    return float(np.linalg.norm(_matrix(a), 2))


def _layer_of(param: str, stacked: bool, k: int) -> str:
    """The captured layer name of parameter `param` (its module path; `/k` when stacked)."""
    module = param.rsplit("/", 1)[0]
    return f"{module}/{k}" if stacked else module


def one_step(model, x, labels, optimizer: str, lr: float) -> dict[str, dict[str, Any]]:
    """{layer: {field: value, "lr_multiplier": m, "fan_in": ...}} for one step of `optimizer`
    (the rule's scaled one) at `lr` on (x, labels), softmax cross-entropy."""
    apply, params, _ = make_preactivations(model)
    tx = rules.optimizer(optimizer, lr, rules.param_scales(model))
    multipliers = rules.lr_multipliers(model)

    def loss(p, x, labels):
        logits = apply(p, x)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    # Compiled programs, the batch an argument (not a constant baked into them): eagerly,
    # every op of the gradient and of the optimizer compiled on its own, once per shape
    @jax.jit
    def step(p, x, labels):
        grads = jax.grad(loss)(p, x, labels)
        updates, _ = tx.update(grads, tx.init(p), p)
        return grads, optax.apply_updates(p, updates)

    grads, after = step(params, x, labels)
    own_outputs = jax.jit(lambda p, d, x: jax.jvp(lambda q: apply(q, x)[1], (p,), (d,))[1])
    layers = functools.partial(own_outputs, x=x)
    zeros = jax.tree.map(lambda p: np.zeros(p.shape, p.dtype), params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    treedef = jax.tree.structure(params)
    leaves = {
        "grad": jax.tree.leaves(grads),
        "after": jax.tree.leaves(after),
        "multiplier": jax.tree.leaves(multipliers),
    }
    stacks = _stack_depths(model)
    out = {}
    for i, (path, w) in enumerate(flat):
        name = _name(path)
        extra = stacks.get(name.rsplit("/", 1)[0], 0)
        w = np.asarray(w, np.float64)
        dw = np.asarray(leaves["after"][i], np.float64) - w
        g = np.asarray(leaves["grad"][i], np.float64)
        split = [_layers(a, extra) for a in (w, dw, g)]
        for k, (wk, dk, gk) in enumerate(zip(*split)):
            layer = _layer_of(name, bool(extra), k)
            key = f"{name}/{k}" if extra else name
            entry = {
                "layer": layer,
                "fan_in": int(np.prod(wk.shape[:-1])) if wk.ndim > 1 else 1,
                "lr_multiplier": float(np.ravel(leaves["multiplier"][i])[0]),
                "rel_update_fro": _ratio(np.linalg.norm(dk), np.linalg.norm(wk)),
                "rel_update_spectral": _ratio(_spectral(dk), _spectral(wk)),
                "effective_lr": _ratio(np.linalg.norm(dk), np.linalg.norm(gk)),
                "alignment_ratio": None,
                "alignment_exponent": None,
            }
            if wk.ndim > 1:
                ratio = _alignment(layers, params, zeros, treedef, i, w, dw, extra, k, layer)
                if ratio is not None:
                    entry["alignment_ratio"] = ratio
                    if entry["fan_in"] > 1 and ratio > 0:
                        entry["alignment_exponent"] = 0.5 + np.log(ratio) / np.log(entry["fan_in"])
            out[key] = entry
    return out


def _layers(a: np.ndarray, extra: int) -> np.ndarray:
    """[layers, *shape]: the stacked axes folded into one (a lone layer for extra = 0)."""
    return a.reshape(-1, *a.shape[extra:]) if extra else a[None]


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _stack_depths(model) -> dict[str, int]:
    """{module path: number of stacked leading axes} for the stacked rules layers."""
    from scaling.capture import stacked_axes

    return stacked_axes(model)


def _alignment(layers, params, zeros, treedef, i, w, dw, extra, k, layer) -> float | None:
    """(||J(dW)|| / ||dW||) / (||J(W)|| / ||W||) on layer `layer`, J the own-output map."""

    def own_change(direction: np.ndarray) -> float | None:
        full = np.zeros_like(w)
        if extra:
            full.reshape(-1, *w.shape[extra:])[k] = direction
        else:
            full[...] = direction
        tangent = jax.tree.leaves(zeros)
        tangent[i] = full.astype(tangent[i].dtype)
        changes = layers(params, jax.tree.unflatten(treedef, tangent))
        if layer not in changes:
            return None
        return float(np.linalg.norm(np.asarray(changes[layer], np.float64)))

    wk = w.reshape(-1, *w.shape[extra:])[k] if extra else w
    dk = dw.reshape(-1, *w.shape[extra:])[k] if extra else dw
    du, base = own_change(dk), own_change(wk)
    if du is None or base is None or base == 0 or np.linalg.norm(dk) == 0:
        return None
    return float((du / np.linalg.norm(dk)) / (base / np.linalg.norm(wk)))


def seed_mean(per_seed: list[dict]) -> dict[str, dict[str, Any]]:
    """Fields averaged over seeds (None stays None)."""
    out = {}
    for key, first in per_seed[0].items():
        entry = dict(first)
        for field in (*FIELDS, "alignment_exponent"):
            values = [s[key][field] for s in per_seed]
            entry[field] = None if any(v is None for v in values) else float(np.mean(values))
        out[key] = entry
    return out
