"""An independent float64 numpy ViT (the zoo's `vit` as the probes build it: no normalization,
no biases, class-token readout, learned positions, ReLU MLP): forward, hand-written
backward, and one SGD step with per-parameter LR multipliers.

Written from the architecture's definition (zoo/vit.py's docstring), not from its code: it
shares only the parameter values, which `params_of` copies out of a built model.
"""

from __future__ import annotations

import numpy as np


def params_of(model) -> dict:
    """Parameters, forward multipliers and shapes of a zoo ViT, as float64 numpy."""
    blocks = model.trunk.blocks
    f64 = lambda v: np.asarray(v[...], np.float64)  # noqa: E731
    return {
        "patch": model.patch,
        "heads": blocks.heads if np.ndim(blocks.heads) == 0 else int(np.ravel(blocks.heads)[0]),
        "logit_scale": float(np.ravel(blocks.logit_scale)[0]),
        "branch": float(np.ravel(blocks.residual_multiplier)[0]),
        "input": f64(model.input.kernel),
        "cls": f64(model.cls_token.table),
        "positions": f64(model.positions.table),
        "qkv": f64(blocks.qkv.kernel),
        "proj": f64(blocks.proj.kernel),
        "fc1": f64(blocks.fc1.kernel),
        "fc2": f64(blocks.fc2.kernel),
        "output": f64(model.output.kernel),
        "multipliers": {
            name: float(np.ravel(layer.multiplier)[0])
            for name, layer in [
                ("input", model.input),
                ("cls", model.cls_token),
                ("positions", model.positions),
                ("qkv", blocks.qkv),
                ("proj", blocks.proj),
                ("fc1", blocks.fc1),
                ("fc2", blocks.fc2),
                ("output", model.output),
            ]
        },
    }


WEIGHTS = ("input", "cls", "positions", "qkv", "proj", "fc1", "fc2", "output")


def patches(x: np.ndarray, size: int) -> np.ndarray:
    """[B, H, W, C] -> [B, (H/p)(W/p), p p C], patches in row-major order."""
    b, h, w, c = x.shape
    out = np.zeros((b, (h // size) * (w // size), size * size * c))
    for i in range(h // size):
        for j in range(w // size):
            block = x[:, i * size : (i + 1) * size, j * size : (j + 1) * size, :]
            out[:, i * (w // size) + j] = block.reshape(b, -1)
    return out


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def forward(p: dict, x: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """(logits, {layer: pre-activation}, cache for the backward pass)."""
    m = p["multipliers"]
    P = patches(np.asarray(x, np.float64), p["patch"])
    batch, count, _ = P.shape
    pre, cache = {}, {"P": P, "blocks": []}
    pre["input"] = m["input"] * P @ p["input"]
    cls = np.broadcast_to(m["cls"] * p["cls"][:1], (batch, 1, pre["input"].shape[2]))
    h = np.concatenate([cls, pre["input"]], axis=1) + m["positions"] * p["positions"][: count + 1]
    heads, bm, s = p["heads"], p["branch"], p["logit_scale"]
    for k in range(p["qkv"].shape[0]):
        c = {"u": h}
        z = m["qkv"] * h @ p["qkv"][k]
        pre[f"trunk/blocks/qkv/{k}"] = z
        b, t, _ = z.shape
        per_head = z.reshape(b, t, heads, -1)
        d = per_head.shape[-1] // 3
        q, kk, v = per_head[..., :d], per_head[..., d : 2 * d], per_head[..., 2 * d :]
        A = _softmax(s * np.einsum("bqhd,bkhd->bhqk", q, kk), axis=-1)
        a = np.einsum("bhqk,bkhd->bqhd", A, v).reshape(b, t, -1)
        pre[f"trunk/blocks/proj/{k}"] = zp = m["proj"] * a @ p["proj"][k]
        h = h + bm * zp
        c |= {"q": q, "k": kk, "v": v, "A": A, "a": a, "mid": h}
        pre[f"trunk/blocks/fc1/{k}"] = z1 = m["fc1"] * h @ p["fc1"][k]
        r = np.maximum(z1, 0)
        pre[f"trunk/blocks/fc2/{k}"] = z2 = m["fc2"] * r @ p["fc2"][k]
        h = h + bm * z2
        c |= {"z1": z1, "r": r}
        cache["blocks"].append(c)
    cache["top"] = h[:, 0]
    pre["output"] = logits = m["output"] * h[:, 0] @ p["output"]
    return logits, pre, cache


def _outer(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """sum over batch and positions of a^T g: [.., i] x [.., o] -> [i, o]."""
    return a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])


def gradients(p: dict, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
    """Mean softmax cross-entropy and its gradient with respect to every weight."""
    m, bm, s = p["multipliers"], p["branch"], p["logit_scale"]
    logits, _, cache = forward(p, x)
    batch = logits.shape[0]
    probs = _softmax(logits, -1)
    loss = float(-np.mean(np.log(probs[np.arange(batch), labels])))
    dlogits = (probs - np.eye(logits.shape[1])[labels]) / batch
    g = {name: np.zeros_like(p[name]) for name in WEIGHTS}
    g["output"] = m["output"] * _outer(cache["top"], dlogits)
    dh = np.zeros((batch, *cache["blocks"][-1]["u"].shape[1:]))
    dh[:, 0] = m["output"] * dlogits @ p["output"].T
    for k in reversed(range(p["qkv"].shape[0])):
        c = cache["blocks"][k]
        dz2 = bm * dh
        g["fc2"][k] = m["fc2"] * _outer(c["r"], dz2)
        dz1 = m["fc2"] * dz2 @ p["fc2"][k].T * (c["z1"] > 0)
        g["fc1"][k] = m["fc1"] * _outer(c["mid"], dz1)
        dh = dh + m["fc1"] * dz1 @ p["fc1"][k].T
        dzp = bm * dh
        g["proj"][k] = m["proj"] * _outer(c["a"], dzp)
        da = (m["proj"] * dzp @ p["proj"][k].T).reshape(c["q"].shape)
        A = c["A"]
        dA = np.einsum("bqhd,bkhd->bhqk", da, c["v"])
        dv = np.einsum("bhqk,bqhd->bkhd", A, da)
        dlog = A * (dA - (dA * A).sum(-1, keepdims=True))
        dq = s * np.einsum("bhqk,bkhd->bqhd", dlog, c["k"])
        dk = s * np.einsum("bhqk,bqhd->bkhd", dlog, c["q"])
        dz = np.concatenate([dq, dk, dv], axis=-1).reshape(dh.shape[0], dh.shape[1], -1)
        g["qkv"][k] = m["qkv"] * _outer(c["u"], dz)
        dh = dh + m["qkv"] * dz @ p["qkv"][k].T
    count = dh.shape[1]
    g["positions"][:count] = m["positions"] * dh.sum(0)
    g["cls"][0] = m["cls"] * dh[:, 0].sum(0)
    g["input"] = m["input"] * _outer(cache["P"], dh[:, 1:])
    return loss, g


def sgd_step(p: dict, grads: dict, lr: float, lr_multipliers: dict) -> dict:
    """p - lr x (the parameter's LR multiplier) x gradient, for every weight."""
    return p | {name: p[name] - lr * lr_multipliers[name] * grads[name] for name in WEIGHTS}
