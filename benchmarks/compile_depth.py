"""Compile time of one training step against depth, for resmlp and resnet (not a test).

Identical residual blocks are scanned, so compile time should stay about flat in depth.
Prints a table with the ratio of each depth's time to the first depth's, and the command.

    python benchmarks/compile_depth.py [--depths 8 32 128] [--unrolled]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import rules  # noqa: E402
import zoo  # noqa: E402
from training.steps import make_train_chunk, split_model  # noqa: E402

MODELS = {  # name -> (input shape, width)
    "resmlp": ((40,), 128),
    "resnet": ((8, 8, 1), 16),
}


def compile_seconds(name: str, depth: int, scan: bool, batch: int = 32) -> float:
    """Seconds to trace, lower and compile one Adam step (a 1-step training chunk)."""
    shape, width = MODELS[name]
    config = zoo.ModelConfig(input_shape=shape, num_classes=10, width=width, depth=depth,
                             base_width=width, normalization="batch", scan_blocks=scan)  # fmt: skip
    model = zoo.build(name, config, rules.mup, nnx.Rngs(0))
    graphdef, params, rest = split_model(model)
    optimizer = rules.with_lr_multipliers(optax.adam(1e-3), rules.lr_multipliers(model))
    opt_state = optimizer.init(params)
    x, y = jnp.zeros((1, batch, *shape)), jnp.zeros((1, batch), jnp.int32)  # a 1-step chunk
    step = make_train_chunk(graphdef, optimizer)
    start = time.perf_counter()
    step.lower(params, rest, opt_state, x, y).compile()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--unrolled", action="store_true", help="also time a Python-loop model")
    args = parser.parse_args()
    print("command: python " + shlex.join(sys.argv))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    print("depth: resmlp = residual blocks, resnet = layers (6n+2); one Adam step, batch 32\n")
    variants = [("scan", True)] + ([("unrolled", False)] if args.unrolled else [])
    columns = [(name, label, scan) for name in MODELS for label, scan in variants]
    header = "".join(f"{name + ' ' + label:>26}" for name, label, _ in columns)
    print(f"{'depth':>6}{header}")
    for name in MODELS:  # warm-up: the first compile in a process also pays one-off costs
        compile_seconds(name, args.depths[0], True)
    first: dict[tuple[str, str], float] = {}
    for depth in args.depths:
        cells = []
        for name, label, scan in columns:
            seconds = compile_seconds(name, depth, scan)
            base = first.setdefault((name, label), seconds)
            cells.append(f"{seconds:8.2f} s  ({seconds / base:4.2f}x)")
        print(f"{depth:>6}" + "".join(f"{c:>26}" for c in cells), flush=True)
    print(f"\n(ratios are against depth {args.depths[0]})")


if __name__ == "__main__":
    main()
