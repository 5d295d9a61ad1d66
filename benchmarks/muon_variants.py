"""Where the Muon overhead at MLP width 256 comes from: our step and the hand-written one
taken apart, every pairing of (our zoo model / rule_overhead's plain model) x (our
optimizer, with and without injected hyperparameters / the hand-written optax split) x
(our engine's chunk / the plain chunk), timed interleaved in one process.

    python benchmarks/muon_variants.py [--width 256] [--repeats 11]

Ratios are against "hand model, hand tx, plain chunk" (muon_overhead.py's "by hand");
"ours, engine, injected" is muon_overhead.py's "ours". Variants that compile to the same
program (see BENCHMARKS.md section 8) show how far this method's noise reaches at that size.
"""

from __future__ import annotations

import argparse
import math

import common
import jax
from flax import nnx
from muon_overhead import muon_by_hand
from rule_overhead import LR, PlainMLP, plain_chunk, runner

import rules
import zoo
from scaling_training.engine import make_train_chunk, split_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    common.header("muP + Muon, MLP depth 3, batch 128; ms per step (median of interleaved chunks)")
    base, steps, key = 64, 10, jax.random.key(0)
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=args.width, depth=3,
                             base_width=base, optimizer="muon")  # fmt: skip
    ours = zoo.build("mlp", config, rules.mup, nnx.Rngs(0))
    xs = jax.random.normal(key, (steps, 128, 40))
    ys = jax.random.randint(key, (steps, 128), 0, 10)
    graphdef, params, rest = split_model(ours)
    hand_tx = muon_by_hand(params, args.width / base, 0.2 * math.sqrt(base))
    fns = {}
    for inject in (True, False):
        tx = rules.optimizer("muon", LR, rules.param_scales(ours), inject=inject)
        for chunk_name, make in (("engine", make_train_chunk), ("plain", plain_chunk)):
            label = f"ours, our tx{' injected' if inject else ''}, {chunk_name} chunk"
            fns[label] = runner(make(graphdef, tx), params, rest, tx.init(params), xs, ys)
    for chunk_name, make in (("engine", make_train_chunk), ("plain", plain_chunk)):
        fns[f"ours, hand tx, {chunk_name} chunk"] = runner(
            make(graphdef, hand_tx), params, rest, hand_tx.init(params), xs, ys
        )
    plain = PlainMLP(40, args.width, 3, 10, args.width / base, nnx.Rngs(0))
    p_graphdef, _, p_rest = split_model(plain)
    reference = "hand model, hand tx, plain chunk"
    fns[reference] = runner(
        plain_chunk(p_graphdef, hand_tx), params, p_rest, hand_tx.init(params), xs, ys
    )
    seconds = common.interleaved(fns, args.repeats)
    for label, value in seconds.items():
        print(f"{label:<40}{1e3 * value / steps:>8.2f} ms{value / seconds[reference]:>8.3f}")


if __name__ == "__main__":
    main()
