"""Compile time and step time of one training step against depth, for the scanned zoo models.

    python benchmarks/compile_depth.py [--depths 8 32 128 256 1024] [--unrolled] [--quick]
        [--models resmlp resnet lm vit]

Identical residual blocks are scanned, so compile time should stay about flat in depth.
ResNet depths must be 6n+2: each depth is rounded down to the nearest such (256 -> 254,
1024 -> 1022). Prints each depth's compile and step time and their ratios to the first
depth's. Target: compile at 128 <= 1.2x that at 8, and depth 1024 compiles.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common
import jax
import jax.numpy as jnp
from flax import nnx

import rules
import zoo
from scaling_training.engine import make_train_chunk, split_model

MODELS = {  # name -> (input shape, width)
    "resmlp": ((40,), 128),
    "resnet": ((8, 8, 1), 16),
    "lm": ((32,), 64),  # 32 tokens of a vocabulary of 10
    "vit": ((8, 8, 1), 64),  # digits-sized images, 16 patches + class token
}
NORMALIZATION = {"resmlp": "batch", "resnet": "batch", "lm": "layer", "vit": "layer"}
BATCH, STEPS = 32, 4


def valid_depth(name: str, depth: int) -> int:
    return depth if name != "resnet" else max(8, 6 * ((depth - 2) // 6) + 2)


def measure(name: str, depth: int, scan: bool, repeats: int = 3) -> tuple[float, float]:
    """(seconds to trace, lower and compile a chunk of Adam steps, median seconds per step)."""
    shape, width = MODELS[name]
    config = zoo.ModelConfig(input_shape=shape, num_classes=10, width=width, depth=depth,
                             base_width=width, normalization=NORMALIZATION[name],
                             scan_blocks=scan, optimizer="adam")  # fmt: skip
    model = zoo.build(name, config, rules.mup, nnx.Rngs(0))
    graphdef, params, rest = split_model(model)
    optimizer = rules.optimizer("adam", 1e-3, model)
    opt_state = optimizer.init(params)
    if name == "lm":  # tokens in, a label per token
        x = jax.random.randint(jax.random.key(0), (STEPS, BATCH, *shape), 0, 10)
        y = jnp.zeros((STEPS, BATCH, *shape), jnp.int32)
    else:
        x = jax.random.normal(jax.random.key(0), (STEPS, BATCH, *shape))
        y = jnp.zeros((STEPS, BATCH), jnp.int32)
    chunk = make_train_chunk(graphdef, optimizer)
    start = time.perf_counter()
    compiled = chunk.lower(params, rest, opt_state, x, y).compile()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, rest, opt_state, x, y))
        times.append((time.perf_counter() - start) / STEPS)
    return compile_s, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 32, 128, 256, 1024])
    parser.add_argument("--unrolled", action="store_true", help="also time a Python-loop model")
    parser.add_argument("--quick", action="store_true", help="depths 8 and 32 only")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if args.quick:
        args.depths = [8, 32]
    common.header(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; depth: resmlp = residual "
        f"blocks, resnet = layers 6n+2; Adam, batch {BATCH}, a chunk of {STEPS} steps"
    )
    variants = [("scan", True)] + ([("unrolled", False)] if args.unrolled else [])
    columns = [(name, label, scan) for name in args.models for label, scan in variants]
    print(f"{'':>6}" + "".join(f"{name + ' ' + label:>38}" for name, label, _ in columns))
    print(f"{'depth':>6}" + f"{'compile s (x)':>20}{'step ms (x)':>18}" * len(columns))
    for name in args.models:  # warm-up: the first compiles in a process pay one-off costs (resnet
        measure(name, 8, True, repeats=1)  # at depth 8 has no scanned blocks: warm 32 too)
        measure(name, valid_depth(name, 32), True, repeats=1)
    first: dict[tuple[str, str], tuple[float, float]] = {}
    judged: dict[str, float] = {}  # scanned model -> compile at min(128, deepest) / first
    target = min(128, max(args.depths))
    for depth in args.depths:
        cells = []
        for name, label, scan in columns:
            d = valid_depth(name, depth)
            if not scan and d > 128:
                cells.append(f"{'-':>20}{'-':>18}")
                continue
            c, s = measure(name, d, scan)
            c0, s0 = first.setdefault((name, label), (c, s))
            if scan and depth == target:
                judged[name] = c / c0
            tag = f"[{d}] " if d != depth else ""
            cells.append(f"{tag}{c:.2f} ({c / c0:4.2f}x)".rjust(20) +
                         f"{1e3 * s:8.2f} ({s / s0:5.1f}x)".rjust(18))  # fmt: skip
        print(f"{depth:>6}" + "".join(cells), flush=True)
    print(f"\n(x = ratio to depth {args.depths[0]}; [d] = the resnet depth 6n+2 used)")
    for name, ratio in judged.items():
        print(f"{name}: compile at depth {target} / depth {args.depths[0]} = {ratio:.2f}x"
              f"   target <= 1.2: {common.verdict(ratio <= 1.2)}")  # fmt: skip


if __name__ == "__main__":
    main()
