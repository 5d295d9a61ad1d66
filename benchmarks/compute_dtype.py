"""bfloat16 against float32 compute (`--dtype`): one scanned chunk of Adam steps per side.

    python benchmarks/compute_dtype.py [--widths 256 1024] [--steps=20] [--quick]

muP MLP (input 784, depth 3, base width 64), batch 256, random data in memory, through
`scaling_training.engine.make_train_chunk(..., compute_dtype)` as `train.py --dtype` runs it: params
and optimizer state float32, forward and backward in the compute dtype. Sides timed
interleaved after a compile (medians of 5). XLA:CPU has no fast bfloat16 matmuls, so on a
CPU this shows the cost of the casts; on GPUs and TPUs bfloat16 is where the speed is.
"""

from __future__ import annotations

import argparse

import common
import jax
import jax.numpy as jnp
import numpy as np

import rules
import zoo
from scaling_training import engine, models


def sides(width: int, steps: int) -> dict:
    config = zoo.ModelConfig((784,), 10, width=width, depth=3, base_width=64)
    model = models.build(config, "mup", 0)
    graphdef, params, rest = engine.split_model(model)
    tx = rules.optimizer("adam", 1e-3, rules.param_scales(model), inject=True)
    opt_state = tx.init(params)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(steps, 256, 784)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, size=(steps, 256)).astype(np.int32))
    out = {}
    for name, dtype in (("float32", None), ("bfloat16", jnp.bfloat16)):
        chunk = engine.make_train_chunk(graphdef, tx, dtype)

        def run(chunk=chunk) -> None:
            jax.block_until_ready(chunk(params, rest, opt_state, x, y))

        run()  # compile
        out[name] = run
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="width 256, 5 steps")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.steps = [256], 5
    common.header(f"{args.steps} steps per chunk, batch 256, on {jax.devices()[0].platform}")
    print(f"{'width':>6}{'float32 s':>11}{'bfloat16 s':>12}{'f32 / bf16':>12}")
    for width in args.widths:
        t = common.interleaved(sides(width, args.steps), 5)
        ratio = t["float32"] / t["bfloat16"]
        print(f"{width:>6}{t['float32']:>11.3f}{t['bfloat16']:>12.3f}{ratio:>12.2f}", flush=True)
    print("\nf32 / bf16 > 1: bfloat16 compute is faster")


if __name__ == "__main__":
    main()
