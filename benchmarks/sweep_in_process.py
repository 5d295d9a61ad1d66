"""In-process sweep: one vmapped program for 16 lrs x 2 seeds against the same 32 runs in a
Python loop, compile excluded, at several widths (where does vmapping stop paying?).

    python benchmarks/sweep_in_process.py [--widths 32 64 128 512] [--steps=50]

muP MLP (input 40, depth 3, base width 64), Adam, batch 128, random data in memory. The
sweep side is `scaling_training.members.make_members_chunk` as `train.py --lrs --seeds` runs it; the
loop side is `scaling_training.engine.make_train_chunk`, compiled once (the lr is an injected
hyperparameter), called once per (seed, lr). Each side is timed twice, interleaved, after a
compile; medians.
"""

from __future__ import annotations

import argparse
import time

import common
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import rules
import zoo
from scaling_training.engine import make_train_chunk, split_model
from scaling_training.members import init_members, make_members_chunk

LRS = [float(f"{lr:.3g}") for lr in np.logspace(-4, -1, 16)]
SEEDS = [0, 1]


def setup(width: int, steps: int):
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=width, depth=3,
                             base_width=min(64, width))  # fmt: skip
    models = [zoo.build("mlp", config, rules.mup, nnx.Rngs(s)) for s in SEEDS]
    splits = [split_model(m) for m in models]
    graphdef = splits[0][0]
    tx = rules.optimizer("adam", LRS[0], rules.param_scales(models[0]), inject=True)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(len(SEEDS), steps, 128, 40)).astype(np.float32)
    ys = rng.integers(0, 10, size=(len(SEEDS), steps, 128)).astype(np.int32)

    state = init_members(tx, splits, LRS)
    count = len(SEEDS) * len(LRS)
    alive, diverged_at = jnp.ones(count, bool), jnp.zeros(count, jnp.int32)
    seed_index = jnp.repeat(jnp.arange(len(SEEDS), dtype=jnp.int32), len(LRS))
    numbers = np.arange(1, steps + 1, dtype=np.int32)
    sweep_chunk = make_members_chunk(graphdef, tx)

    def sweep() -> None:
        jax.block_until_ready(sweep_chunk(state, alive, diverged_at, seed_index, xs, ys, numbers))

    chunk = make_train_chunk(graphdef, tx)
    members = [jax.tree.map(lambda a, m=m: a[m], state) for m in range(count)]

    def loop() -> None:
        for m, (params, rest, opt_state) in enumerate(members):
            s = m // len(LRS)
            jax.block_until_ready(chunk(params, rest, opt_state, xs[s], ys[s]))

    start = time.perf_counter()
    sweep()
    compile_sweep = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(chunk(*members[0], xs[0], ys[0]))
    compile_run = time.perf_counter() - start
    return sweep, loop, compile_sweep, compile_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 512])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="width 32, 5 steps")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.steps = [32], 5
    n = len(LRS) * len(SEEDS)
    common.header(f"{len(LRS)} lrs x {len(SEEDS)} seeds = {n} members, {args.steps} steps each")
    print(f"{'width':>6}{'sweep s':>9}{f'{n} runs s':>10}{'ratio':>8}"
          f"{'compile sweep s':>17}{'compile run s':>15}")  # fmt: skip
    for width in args.widths:
        sweep, loop, c_sweep, c_run = setup(width, args.steps)
        t = common.interleaved({"sweep": sweep, "loop": loop}, 2)
        print(f"{width:>6}{t['sweep']:>9.2f}{t['loop']:>10.2f}{t['loop'] / t['sweep']:>8.2f}"
              f"{c_sweep:>17.2f}{c_run:>15.2f}", flush=True)  # fmt: skip
    print("\nratio = 32 runs in a loop / one vmapped sweep (> 1: vmapping pays)")


if __name__ == "__main__":
    main()
