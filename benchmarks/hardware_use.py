"""Hardware use: achieved FLOP/s of the training step against a large matmul's, same script.

    python benchmarks/hardware_use.py [--width=2048] [--batch=128] [--quick]

FLOPs of one step come from XLA's `cost_analysis()` of the compiled single step (the scan of
a chunk would count its body once); the time per step is the median over interleaved chunks
of `scaling_training.engine.make_train_chunk` (muP MLP, input 40, depth 3, Adam). The peak is a
jitted 4096 x 4096 float32 matmul (2 n^3 FLOPs) timed in the same rounds. Target: the step
reaches >= 50% of that peak for width 2048, batch 128.
"""

from __future__ import annotations

import argparse

import common
import jax
import jax.numpy as jnp
from flax import nnx

import rules
import zoo
from scaling_training.engine import make_step, make_train_chunk, split_model


def flops_of(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--matmul", type=int, default=4096, help="size n of the peak matmul")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="width 256, matmul 1024")
    args = parser.parse_args()
    if args.quick:
        args.width, args.matmul, args.rounds, args.steps = 256, 1024, 3, 5
    common.header(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=args.width, depth=3,
                             base_width=64)  # fmt: skip
    model = zoo.build("mlp", config, rules.mup, nnx.Rngs(0))
    graphdef, params, rest = split_model(model)
    tx = rules.optimizer("adam", 1e-3, rules.param_scales(model), inject=True)
    opt_state = tx.init(params)
    key = jax.random.key(0)
    xs = jax.random.normal(key, (args.steps, args.batch, 40))
    ys = jax.random.randint(key, (args.steps, args.batch), 0, 10)
    step = jax.jit(make_step(graphdef, tx))
    step_flops = flops_of(step.lower(params, rest, opt_state, xs[0], ys[0]).compile())
    chunk = make_train_chunk(graphdef, tx).lower(params, rest, opt_state, xs, ys).compile()

    n = args.matmul
    a = jax.random.normal(key, (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    matmul_flops = 2.0 * n**3

    fns = {
        "step": lambda: jax.block_until_ready(chunk(params, rest, opt_state, xs, ys)),
        "matmul": lambda: jax.block_until_ready(matmul(a, b)),
    }
    for fn in fns.values():
        fn()
    t = common.interleaved(fns, args.rounds)
    step_rate = step_flops * args.steps / t["step"]
    peak = matmul_flops / t["matmul"]
    print(f"{'':<44}{'GFLOP':>10}{'ms':>9}{'GFLOP/s':>10}")
    print(
        f"{f'training step: mlp width {args.width}, batch {args.batch}':<44}"
        f"{step_flops / 1e9:>10.3f}{1e3 * t['step'] / args.steps:>9.2f}{step_rate / 1e9:>10.1f}"
    )
    print(
        f"{f'matmul {n} x {n} @ {n} x {n}':<44}"
        f"{matmul_flops / 1e9:>10.1f}{1e3 * t['matmul']:>9.1f}{peak / 1e9:>10.1f}"
    )
    ratio = step_rate / peak
    verdict = common.verdict(ratio >= 0.5)
    print(f"\nstep / matmul peak: {ratio:.1%}   target >= 50%: {verdict}")
    d, w, c, bsz = 40, args.width, 10, args.batch
    matmul_count = 6 * bsz * (d * w + 2 * w * w + w * c)  # forward + 2 backward products
    print(f"(cost_analysis FLOPs / 6 B sum(fan_in fan_out) = {step_flops / matmul_count:.3f})")


if __name__ == "__main__":
    main()
