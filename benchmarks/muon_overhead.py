"""Muon under a rule: its overhead against a hand-written optax Muon + AdamW split, and the
cost of a Muon step against an Adam step on the same model.

    python benchmarks/muon_overhead.py [--quick] [--models mlp lm]

"ours": the zoo model under `mup` with `--optimizer=muon` (`rules.optimizer("muon", ...)`:
optax's `scale_by_muon` for hidden matrices, our per-parameter Adam for the rest, the rule's
multipliers). "by hand": the plain Flax model of rule_overhead.py with what a user would
write for muP + Muon: `optax.partition` of `optax.contrib.scale_by_muon` (x 0.2 sqrt(base
width), the same base factor) on the hidden kernels and `optax.adam` at muP's learning rates
on the rest. The MLP's hand side starts from our parameters and the script checks that both
give the same losses (same math). Target: ours <= 1.05 x by hand. The last column is our
Muon step against our Adam step on the same model (what Newton-Schulz costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import common
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from optax.contrib import MuonDimensionNumbers, scale_by_muon
from rule_overhead import LR, PlainLM, PlainMLP, runner, side_by_side

import rules
import zoo
from scaling_training.engine import make_train_chunk, split_model


def muon_by_hand(params: dict, n: float, base: float) -> optax.GradientTransformation:
    """Hidden kernels (2-D, after the input layer, before the readout) -> Muon x base at lr;
    the rest -> Adam at muP's lr (input layer, tables, biases, norms lr; readout lr / n)."""

    def label(path, leaf) -> str:
        names = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        if leaf.ndim == 1 or names[0] in ("input", "positions"):
            return "adam"
        return "adam/n" if names[0] == "output" else "muon"

    labels = jax.tree_util.tree_map_with_path(label, params)
    dims = lambda updates: jax.tree.map(lambda _: MuonDimensionNumbers(), updates)  # noqa: E731
    muon = optax.chain(scale_by_muon(weight_dimension_numbers=dims), optax.scale(base),
                       optax.scale_by_learning_rate(LR))  # fmt: skip
    groups = {"muon": muon, "adam": optax.adam(LR), "adam/n": optax.adam(LR / n)}
    return optax.partition(groups, labels)


def sides(ours, plain, n, base, xs, ys, copy_params=False):
    """Timed chunks of our Muon step and of the hand-written one."""
    hand_tx = lambda p_params: muon_by_hand(p_params, n, base)  # noqa: E731
    return side_by_side(ours, plain, "muon", hand_tx, xs, ys, copy_params, plain_name="hand")


def adam_runner(name, config, xs, ys):
    """Our Adam step on the same architecture (the model built for Adam's family)."""
    model = zoo.build(name, dataclasses.replace(config, optimizer="adam"), rules.mup, nnx.Rngs(0))
    graphdef, params, rest = split_model(model)
    tx = rules.optimizer("adam", LR, rules.param_scales(model), inject=True)
    return runner(make_train_chunk(graphdef, tx), params, rest, tx.init(params), xs, ys)


def row(label, fns, steps):
    t = common.interleaved(fns, REPEATS[0])
    ms = {k: 1e3 * v / steps for k, v in t.items()}
    ratio, cost = t["ours"] / t["hand"], t["ours"] / t["adam"]
    verdict = common.verdict(ratio <= 1.05)
    print(f"{label:<34}{ms['ours']:>9.2f}{ms['hand']:>9.2f}{ratio:>8.3f}  "
          f"{verdict:<10}{ms['adam']:>9.2f}{cost:>10.2f}", flush=True)  # fmt: skip


REPEATS = [15]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--models", nargs="+", default=["mlp", "lm"], choices=["mlp", "lm"])
    args = parser.parse_args()
    common.header("muP; ms per training step (median of interleaved chunks)")
    REPEATS[0], steps = (3, 5) if args.quick else (11, 10)
    print(f"{'model':<34}{'ours':>9}{'by hand':>9}{'ratio':>8}  {'<= 1.05':<10}"
          f"{'adam':>9}{'muon/adam':>10}")  # fmt: skip
    key = jax.random.key(0)
    for width, base in ((64, 16),) if args.quick else ((256, 64), (1024, 64)):
        if "mlp" not in args.models:
            break
        config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=width, depth=3,
                                 base_width=base, optimizer="muon")  # fmt: skip
        ours = zoo.build("mlp", config, rules.mup, nnx.Rngs(0))
        plain = PlainMLP(40, width, 3, 10, width / base, nnx.Rngs(0))
        xs = jax.random.normal(key, (steps, 128, 40))
        ys = jax.random.randint(key, (steps, 128), 0, 10)
        fns = sides(ours, plain, width / base, 0.2 * math.sqrt(base), xs, ys, copy_params=True)
        fns["adam"] = adam_runner("mlp", config, xs, ys)
        row(f"mlp width {width} (base {base}), b128", fns, steps)
    shapes = ((64, 32, 2, 32, 8),) if args.quick else ((128, 64, 2, 64, 32), (256, 64, 4, 64, 32))
    for width, base, depth, length, batch in shapes if "lm" in args.models else ():
        xs = jax.random.randint(key, (steps, batch, length), 0, 256)
        ys = jnp.roll(xs, -1, axis=-1)
        config = zoo.ModelConfig(input_shape=(length,), num_classes=256, width=width,
                                 depth=depth, base_width=base, normalization="layer", heads=4,
                                 scan_blocks=False, optimizer="muon")  # fmt: skip
        ours = zoo.build("lm", config, rules.mup, nnx.Rngs(0))
        plain = PlainLM(256, length, width, depth, 4, width / base, nnx.Rngs(0))
        # Moonlight's base factor differs per matrix shape in the lm (w x 3w, w x 4w, 4w x w);
        # the hand side uses one, 0.2 sqrt(4 base), which does not change the cost.
        fns = sides(ours, plain, width / base, 0.2 * math.sqrt(4 * base), xs, ys)
        fns["adam"] = adam_runner("lm", config, xs, ys)
        row(f"lm w{width} (base {base}) K{depth} loop, b{batch}", fns, steps)


if __name__ == "__main__":
    main()
