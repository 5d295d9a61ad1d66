"""Why the ViT's coordinate check drifts under SGD with muP: first-step gradients vs width.

    python experiments/vit_sgd_gradients.py --variants=vit,mean_mix,no_mix \
        --widths=128,256,512,1024,2048 --seeds=2

A small functional ViT in plain JAX with muP in Tensor Programs V's table-3 form (the one
`rules.mup` uses): fan-in init for the patch embedding (std 1/sqrt(patch values)) and the
hidden matrices, std 1 for the class-token and position tables, readout std
sqrt(n0)/n, logits sqrt(d0)/d x q.k. Ablations (`VARIANTS`) change one piece at a time.
It reports, per parameter, the RMS of the first gradient at init and its slope against
width next to muP's prediction (SGD: every parameter but the readout n^-1, the readout
n^0; q and k n^-3/2 because the 1/d logits' gradient is a sum of d independent terms), and
the backward signal dL/dh (RMS per coordinate) at every block's input, for the
class-token row and the patch rows apart.

`zoo_params` copies a zoo ViT's parameters in, so the model here is checked against the
zoo's (tests/test_vit_sgd_gradients.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class Variant:
    """One architecture. mixing: "attention", "mean" (uniform weights: v and proj kept, no
    q/k), "none" (the branch is proj(v) of the token itself) or "off" (no attention branch).
    tokens: False = a ResMLP on the flattened image (one token, no class token or
    positions)."""

    mixing: str = "attention"
    logits: str = "mup"  # "mup": sqrt(d0)/d; "sp": 1/sqrt(d)
    norm: str = "none"  # "none", "layer", "rms" (pre-norm in every branch and a final norm)
    pooling: str = "cls"  # "cls" or "mean"
    tokens: bool = True
    readout_activation: bool = False  # relu before the readout (the zoo's ResMLP)
    qk_backward: bool = True  # False: no gradient through the attention weights (a
    # diagnostic, not a model: the backward signal then takes the value path only)
    zero_query: bool = False  # query columns zero at init (TP V's suggestion)
    readout_scale: float = 1.0  # readout init std x this (a constant: muP's exponents stay)


VARIANTS = {
    "vit": Variant(),
    "vit_mean_pool": Variant(pooling="mean"),
    "mean_mix": Variant(mixing="mean", pooling="mean"),
    "mean_mix_cls": Variant(mixing="mean"),
    "no_mix": Variant(mixing="none", pooling="mean"),
    "no_attn": Variant(mixing="off", pooling="mean"),
    "sp_logits": Variant(logits="sp"),
    "value_path": Variant(qk_backward=False),
    "zero_query": Variant(zero_query=True),
    "layernorm_mean_pool": Variant(norm="layer", pooling="mean"),
    "small_readout": Variant(readout_scale=0.1),
    "zero_query_small_readout": Variant(zero_query=True, readout_scale=0.1),
    "layernorm": Variant(norm="layer"),
    "rmsnorm": Variant(norm="rms"),
    "resmlp": Variant(mixing="off", pooling="mean", tokens=False),
    "resmlp_zoo": Variant(mixing="off", pooling="mean", tokens=False, readout_activation=True),
}

# muP's leading-order exponent of the first gradient's RMS (SGD, TP V table 3)
PREDICTED = {"output": 0.0, "q": -1.5, "k": -1.5}
HEADS, BASE, PATCH, CLASSES = 4, 64, 2, 10


def init(key: jax.Array, v: Variant, width: int, depth: int, shape=(8, 8, 1)) -> dict:
    """Parameters at init, the zoo's muP stds (relu: fc2 gain 2)."""
    n, hidden = width, 4 * width
    values = PATCH * PATCH * shape[2] if v.tokens else math.prod(shape)
    count = (shape[0] // PATCH) * (shape[1] // PATCH) + (v.pooling == "cls")
    keys = iter(jax.random.split(key, 8 + 8 * depth))
    normal = lambda shp, std: std * jax.random.normal(next(keys), shp)  # noqa: E731
    p = {"input": normal((values, n), 1 / math.sqrt(values))}
    if v.tokens:
        p["positions"] = normal((count, n), 1.0)
        if v.pooling == "cls":
            p["cls"] = normal((1, n), 1.0)
    blocks = []
    for _ in range(depth):
        b = {"fc1": normal((n, hidden), 1 / math.sqrt(n)),
             "fc2": normal((hidden, n), math.sqrt(2 / hidden))}  # fmt: skip
        if v.mixing in ("attention", "mean", "none"):
            b["qkv" if v.mixing == "attention" else "vo"] = normal(
                (n, 3 * n if v.mixing == "attention" else n), 1 / math.sqrt(n)
            )
            b["proj"] = normal((n, n), 1 / math.sqrt(n))
        if v.norm != "none":
            for name in ("norm1", "norm2"):
                b[name + "_scale"] = jnp.ones(n)
                if v.norm == "layer":
                    b[name + "_bias"] = jnp.zeros(n)
        blocks.append(b)
    p["blocks"] = blocks
    if v.norm != "none":
        p["norm_scale"] = jnp.ones(n)
        if v.norm == "layer":
            p["norm_bias"] = jnp.zeros(n)
    p["output"] = normal((n, CLASSES), v.readout_scale * math.sqrt(BASE) / n)
    if v.zero_query:
        for b in blocks:
            b["qkv"] = b["qkv"].reshape(n, HEADS, 3, -1).at[:, :, 0].set(0.0).reshape(n, 3 * n)
    return p


def lr_multipliers(p: dict, width: int) -> dict:
    """muP's SGD LR multipliers (TP V table 3, relative to BASE): the patch embedding, the
    class-token and position tables and the norms' scales and biases x n/n0, hidden
    matrices x 1, the readout x n0/n."""
    ratio = width / BASE

    def multiplier(path, _):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        if name == "output":
            return 1 / ratio
        if name.startswith("blocks/") and not name.split("/")[-1].startswith("norm"):
            return 1.0
        return ratio

    return jax.tree_util.tree_map_with_path(multiplier, p)


def batch_of(seed: int, batch: int):
    """Gaussian 8x8 images (each with mean square 1, as the probes' inputs) and labels."""
    x = jax.random.normal(jax.random.key(1000 + seed), (batch, 8, 8, 1))
    x = x / jnp.sqrt(jnp.mean(x**2, axis=(1, 2, 3), keepdims=True))
    return x, jax.random.randint(jax.random.key(seed), (batch,), 0, CLASSES)


def changes(v: Variant, width: int, depth: int, seed: int, batch: int = 32, lr: float = 0.01,
            steps: int = 3) -> dict:  # fmt: skip
    """The coordinate check: RMS change of every layer's output on the training batch after
    `steps` full-batch SGD steps with muP's multipliers ("change/<layer>"), and the RMS of
    every layer's output at init ("init/<layer>")."""
    x, labels = batch_of(seed, batch)
    p = init(jax.random.key(seed), v, width, depth)
    mult = lr_multipliers(p, width)

    def acts(p):
        stats = {}
        forward(v, p, x, None, stats)
        return {k[4:]: a for k, a in stats.items() if k.startswith("act/")}

    @jax.jit
    def step(p):
        g = jax.grad(lambda p: loss_fn(v, p, x, labels))(p)
        return jax.tree.map(lambda w, gw, m: w - lr * m * gw, p, g, mult)

    before = jax.jit(acts)(p)
    for _ in range(steps):
        p = step(p)
    after = jax.jit(acts)(p)
    out = {f"change/{k}": float(_rms(after[k] - before[k])) for k in before}
    out.update({f"init/{k}": float(_rms(before[k])) for k in before})
    return out


def _norm(v: Variant, h: jax.Array, p: dict, name: str) -> jax.Array:
    if v.norm == "none":
        return h
    if v.norm == "layer":
        h = h - h.mean(-1, keepdims=True)
    h = h * jax.lax.rsqrt(jnp.mean(h**2, -1, keepdims=True) + 1e-6) * p[name + "_scale"]
    return h + p[name + "_bias"] if v.norm == "layer" else h


def _mixing(v: Variant, b: dict, u: jax.Array, stats: dict, i: int) -> jax.Array:
    batch, length, n = u.shape
    if v.mixing == "attention":
        d = n // HEADS
        q, k, val = jnp.split((u @ b["qkv"]).reshape(batch, length, HEADS, -1), 3, axis=-1)
        scale = math.sqrt(BASE // HEADS) / d if v.logits == "mup" else 1 / math.sqrt(d)
        logits = scale * jnp.einsum("bihd,bjhd->bhij", q, k)
        a = jax.nn.softmax(logits, axis=-1)
        a = a if v.qk_backward else jax.lax.stop_gradient(a)
        stats[f"act/{i}/q"], stats[f"act/{i}/k"], stats[f"act/{i}/v"] = q, k, val
        stats[f"act/{i}/attention_logits"] = logits
        stats[f"forward/{i}/attention_logits"] = _rms(logits)
        stats[f"forward/{i}/cls_self_weight"] = a[:, :, 0, 0].mean()
        out = jnp.einsum("bhij,bjhd->bihd", a, val).reshape(batch, length, n)
    elif v.mixing == "mean":
        out = jnp.broadcast_to((u @ b["vo"]).mean(1, keepdims=True), u.shape)
    else:
        out = u @ b["vo"]
    stats[f"act/{i}/proj"] = out @ b["proj"]
    return stats[f"act/{i}/proj"]


def _rms(a: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(a)))


def forward(v: Variant, p: dict, x: jax.Array, taps: list | None = None, stats=None):
    """Logits [batch, classes]; taps[i] (zeros [batch, tokens, n]) is added to block i's
    input stream (taps[-1] to the readout's input), so their gradients are dL/dh. `stats`
    (a dict) collects forward RMS values: the stream at every block input, attention logits,
    the class token's weight on itself, the model's logits."""
    stats = {} if stats is None else stats
    batch = x.shape[0]
    if v.tokens:
        s = x.shape[1] // PATCH
        pt = x.reshape(batch, s, PATCH, s, PATCH, -1).transpose(0, 1, 3, 2, 4, 5)
        h = pt.reshape(batch, s * s, -1) @ p["input"]
        if v.pooling == "cls":
            h = jnp.concatenate([jnp.broadcast_to(p["cls"], (batch, 1, h.shape[2])), h], 1)
        h = h + p["positions"]
        stats["act/input"] = h
    else:
        h = (x.reshape(batch, -1) @ p["input"])[:, None, :]
    for i, b in enumerate(p["blocks"]):
        if taps is not None:
            h = h + taps[i]
        stats[f"forward/{i}/stream"] = _rms(h)
        if v.mixing != "off":
            h = h + _mixing(v, b, _norm(v, h, b, "norm1"), stats, i)
        stats[f"act/{i}/fc1"] = _norm(v, h, b, "norm2") @ b["fc1"]
        stats[f"act/{i}/fc2"] = jax.nn.relu(stats[f"act/{i}/fc1"]) @ b["fc2"]
        h = h + stats[f"act/{i}/fc2"]
    if taps is not None:
        h = h + taps[-1]
    stats["forward/out/stream"] = _rms(h)
    h = _norm(v, h, p, "norm")
    pooled = h[:, 0] if v.pooling == "cls" else h.mean(1)
    if v.readout_activation:
        pooled = jax.nn.relu(pooled)
    stats["forward/readout_input"] = _rms(pooled)
    logits = pooled @ p["output"]
    stats["forward/logits"] = _rms(logits)
    stats["act/output"] = logits
    return logits


def loss_fn(v: Variant, p, x, labels, taps=None, stats=None) -> jax.Array:
    logits = forward(v, p, x, taps, stats)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def measure(v: Variant, width: int, depth: int, seed: int, batch: int = 32,
            signal_only: bool = False) -> dict:  # fmt: skip
    """{name: RMS} of the first gradient of every parameter (qkv split into q, k, v) and of
    dL/dh at every block input ("signal/i/cls" and "signal/i/patches"). signal_only: the
    backward signals and forward values only (no parameter gradients held: wider widths
    fit in memory)."""
    x, labels = batch_of(seed, batch)
    p = init(jax.random.key(seed), v, width, depth)
    length = p["positions"].shape[0] if v.tokens else 1
    taps = [jnp.zeros((batch, length, width)) for _ in range(depth + 1)]

    def with_stats(p, t):
        stats = {}
        loss = loss_fn(v, p, x, labels, t, stats)
        return loss, {"forward/loss": loss, **stats}

    if signal_only:
        grad_of = jax.value_and_grad(lambda t, p: with_stats(p, t), has_aux=True)
        (_, stats), tap_grads = jax.jit(grad_of)(taps, p)
        grads = {}
    else:
        grad_of = jax.value_and_grad(with_stats, (0, 1), has_aux=True)
        (_, stats), (grads, tap_grads) = jax.jit(grad_of)(p, taps)
    rms = lambda a: float(_rms(a))  # noqa: E731
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        if name.endswith("qkv"):
            parts = leaf.reshape(width, HEADS, 3, -1)
            for j, part in enumerate("qkv"):
                out[name[:-3] + part] = rms(parts[:, :, j])
        else:
            out[name] = rms(leaf)
    for i, t in enumerate(tap_grads):
        where = "out" if i == depth else i
        if v.pooling == "cls":
            out[f"signal/{where}/cls"] = rms(t[:, 0])
            if where != "out":
                out[f"signal/{where}/patches"] = rms(t[:, 1:])
        else:
            out[f"signal/{where}/tokens"] = rms(t)
    out.update({k: float(val) for k, val in stats.items() if not k.startswith("act/")})
    return out


def predicted(name: str) -> float:
    """muP's exponent: gradients and backward signals as PREDICTED; forward quantities Theta(1)
    except the logits (n^-1/2 at init) and the attention logits (muP's 1/d: n^-1/2)."""
    if name.startswith(("change/", "init/")):
        return -0.5 if name.endswith(("output", "attention_logits")) and name[0] == "i" else 0.0
    if name.startswith("forward/"):
        return -0.5 if name.endswith("logits") else 0.0
    last = name.split("/")[-1]
    return PREDICTED.get(last, -1.0)


def slopes(widths: list[int], values: list[float]) -> tuple[float, float]:
    """(least-squares slope of log value against log width, slope of the last pair)."""
    lw, lv = np.log(widths), np.log(values)
    return float(np.polyfit(lw, lv, 1)[0]), float((lv[-1] - lv[-2]) / (lw[-1] - lw[-2]))


def plot(paths: list[str], out: str) -> None:
    """Change RMS against width, one panel per variant (every JSON written by --probe=changes),
    a line per layer, a dashed width^-1/2 guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        panels.update({k: r for k, r in data.items() if isinstance(r, dict) and "table" in r})
    layers = sorted({k[7:] for r in panels.values() for k in r["table"] if k.startswith("change/")})
    colors = dict(zip(layers, plt.cm.tab20(np.linspace(0, 1, 20))))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, r) in zip(axes.flat, panels.items()):
        widths = np.array(r["widths"])
        for layer, row in r["table"].items():
            if layer.startswith("change/") and not layer.endswith(("/q", "/k", "/v")):
                ax.loglog(widths, row["values"], marker="o", ms=3, label=layer[7:],
                          color=colors[layer[7:]])  # fmt: skip
        top = max(row["values"][0] for k, row in r["table"].items() if k.startswith("change/"))
        ax.loglog(widths, top * (widths / widths[0]) ** -0.5, "k--", lw=1, label="width^-1/2")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("width")
        ax.set_xticks(widths, [str(w) for w in widths], minor=False)
        ax.minorticks_off()
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("RMS change after 3 SGD steps")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="vit")
    parser.add_argument("--widths", default="128,256,512,1024")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", default="")
    parser.add_argument("--probe", default="gradients", choices=("gradients", "signals", "changes"))
    parser.add_argument("--plot", default="", help="PNG of the changes in the --json files")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=3)
    a = parser.parse_args(argv)
    if a.plot:
        plot(a.json.split(","), a.plot)
        return 0
    widths = [int(w) for w in a.widths.split(",")]
    results = {}
    for name in a.variants.split(","):
        v = VARIANTS[name]
        rows = {}
        for w in widths:
            if a.probe in ("gradients", "signals"):
                per = [measure(v, w, a.depth, s, a.batch, a.probe == "signals")
                       for s in range(a.seeds)]  # fmt: skip
            else:
                per = [changes(v, w, a.depth, s, a.batch, a.lr, a.steps) for s in range(a.seeds)]
            rows[w] = {k: float(np.mean([r[k] for r in per])) for k in per[0]}
        print(f"\n{name} {v}  depth {a.depth}, batch {a.batch}, {a.seeds} seeds")
        print(f"{'':24s}" + "".join(f"{w:>10d}" for w in widths) + "   slope  last  muP")
        table = {}
        for k in rows[widths[0]]:
            vals = [rows[w][k] for w in widths]
            fit, last = slopes(widths, vals)
            table[k] = {"values": vals, "slope": fit, "last_pair": last, "muP": predicted(k)}
            print(f"{k:24s}" + "".join(f"{x:10.3g}" for x in vals)
                  + f"  {fit:+.2f}  {last:+.2f}  {predicted(k):+.1f}")  # fmt: skip
        results[name] = {"variant": dataclasses.asdict(v), "widths": widths, "table": table}
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"depth": a.depth, "batch": a.batch, "seeds": a.seeds, **results}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
