"""Against PyTorch + microsoft/mup: steps per second of the same muP MLP, side by side.

    python benchmarks/vs_torch_mup.py [--widths 128 512 2048] [--steps=200] [--rounds=3]

The MLP: input 40, 3 hidden relu layers of `width` (base width 64), 10 classes, batch 128,
Adam lr 1e-3, random in-memory batches. Ours: `scaling_training.engine.make_train_chunk` (a jitted
scan of `--steps` steps, as train.py runs it). Theirs: `torch_mup_side.py` (MuReadout,
`set_base_shapes`, MuAdam, an eager loop), run in the optional venv as a subprocess that
times itself after a warm-up (at most 10 s of steps). Steps per round shrink as 1 / width^2
beyond width 256. The two sides alternate in rounds; medians are reported. Torch is tried
with 1 and with 2 threads each round and its faster setting counts (with OpenMP's
spin-waits, 2 threads on a loaded 2-core machine can be 10x slower than 1).

Bound columns, measured in the same rounds: `matmuls` = steps/s of a scan doing only the
step's matmuls (forward, weight and input gradients) in XLA, `adam` = steps/s of our Adam
update alone, `bound` = 1 / (1/matmuls + 1/adam): what a JAX step could reach if everything
else (activations, loss, biases) were free; `ceiling` = bound / torch.

The torch venv (kept out of the project's own venv and tests), made once:

    python3 -m venv .bench-venv-torch && .bench-venv-torch/bin/pip install torch==2.13.0 mup
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common

TORCH_PYTHON = os.path.join(common.ROOT, ".bench-venv-torch", "bin", "python")
SETUP = "python3 -m venv .bench-venv-torch && .bench-venv-torch/bin/pip install torch==2.13.0 mup"


def torch_steps_per_s(width: int, steps: int, threads: int) -> float:
    cmd = [TORCH_PYTHON, os.path.join(common.ROOT, "benchmarks", "torch_mup_side.py"),
           f"--width={width}", f"--steps={steps}", f"--threads={threads}"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["steps_per_s"]


def mup_mlp(width: int):
    """The benchmark's muP MLP and our muP Adam for it: (model, optimizer)."""
    from flax import nnx

    import rules
    import zoo

    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=width, depth=3,
                             base_width=64)  # fmt: skip
    model = zoo.build("mlp", config, rules.mup, nnx.Rngs(0))
    return model, rules.optimizer("adam", 1e-3, rules.param_scales(model), inject=True)


def steps_per_s(call, steps: int):
    """A runner: times `call()` (a chunk of `steps` steps, blocked on), returns steps/s.
    Called once here, so the compile is not timed."""
    import jax

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(call())
        return steps / (time.perf_counter() - start)

    run()  # compile
    return run


def jax_runner(width: int, steps: int):
    """Our training chunk (`make_train_chunk`, as train.py runs it), carrying its state on."""
    import jax

    from scaling_training.engine import make_train_chunk, split_model

    model, tx = mup_mlp(width)
    graphdef, params, rest = split_model(model)
    chunk = make_train_chunk(graphdef, tx)
    key = jax.random.key(0)
    xs = jax.random.normal(key, (steps, 128, 40))
    ys = jax.random.randint(key, (steps, 128), 0, 10)
    state = [params, rest, tx.init(params)]

    def call():
        out = chunk(*state, xs, ys)
        state[:] = out[:3]
        return out

    return steps_per_s(call, steps)


def matmul_floor_runner(width: int, steps: int):
    """Steps/s if a step were only its matmuls (forward, input and weight gradients), in XLA.

    The ceiling any JAX implementation of this step reaches on this backend: ratio against
    torch above `matmul-only / torch` is impossible whatever the rule code does.
    """
    import jax
    import jax.numpy as jnp

    dims = [40, width, width, width, 10]
    keys = jax.random.split(jax.random.key(1), 3 * len(dims))
    acts = [jax.random.normal(keys[i], (128, d)) for i, d in enumerate(dims)]
    weights = [jax.random.normal(keys[len(dims) + i], (a, b)) for i, (a, b) in
               enumerate(zip(dims[:-1], dims[1:]))]  # fmt: skip

    def matmuls(carry, _):
        out = carry
        for i, w in enumerate(weights):
            x, g = acts[i] + carry, acts[i + 1] + carry  # depend on the carry: no hoisting
            products = [x @ w, x.T @ g] + ([g @ w.T] if i else [])  # forward, dW, dx
            out = out + sum(p.sum() for p in products)  # sums cost ~1/width of the matmuls
        return out * 1e-30, None

    @jax.jit
    def chunk():  # a scan of `steps` steps, as the trainer's chunk is
        return jax.lax.scan(matmuls, jnp.zeros(()), None, length=steps)[0]

    return steps_per_s(chunk, steps)


def optimizer_runner(width: int, steps: int):
    """Steps/s of our muP Adam update alone (no forward or backward) on the MLP's parameters:
    memory-bound (it reads and writes parameters, gradients and two moments every step)."""
    import jax
    import optax

    from scaling_training.engine import split_model

    model, tx = mup_mlp(width)
    params = split_model(model)[1]

    @jax.jit
    def chunk(params, opt_state):
        def step(carry, _):
            params, opt_state = carry
            grads = jax.tree.map(lambda p: 1e-3 * p + 1e-4, params)  # fused into the update
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), None, length=steps)[0]

    state = (params, tx.init(params))
    return steps_per_s(lambda: chunk(*state), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="widths 128, 20 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.steps, args.rounds = [128], 20, 1
    if not os.path.exists(TORCH_PYTHON):
        print(f"the torch venv is missing; make it with:\n  {SETUP}", file=sys.stderr)
        sys.exit(2)
    common.header("muP MLP 40 -> 3 x width -> 10, batch 128, Adam; steps/s, medians of rounds")
    print(f"{'width':>6}{'ours':>10}{'torch+mup':>11}{'torch thr':>10}{'ratio':>8}"
          f"{'matmuls':>9}{'adam':>8}{'bound':>8}{'ceiling':>9}  target >= 2")  # fmt: skip
    for width in args.widths:
        steps = max(10, min(args.steps, int(args.steps * (256 / width) ** 2)))
        ours_run, floor_run = jax_runner(width, steps), matmul_floor_runner(width, steps)
        adam_run = optimizer_runner(width, steps)
        ours, floor, adam, theirs = [], [], [], {1: [], 2: []}
        for _ in range(args.rounds):
            ours.append(ours_run())
            floor.append(floor_run())
            adam.append(adam_run())
            for threads in theirs:
                theirs[threads].append(torch_steps_per_s(width, steps, threads))
        best = max(theirs, key=lambda t: statistics.median(theirs[t]))
        a, b = statistics.median(ours), statistics.median(theirs[best])
        matmuls, adam_only = statistics.median(floor), statistics.median(adam)
        bound = 1 / (1 / matmuls + 1 / adam_only)  # the step's matmuls, then the update
        ceiling = bound / b
        verdict = common.verdict(a / b >= 2)
        if ceiling < 2 and a / b < 2:
            verdict += f" (bound: matmuls + Adam alone reach only {ceiling:.2f}x)"
        row = f"{width:>6}{a:>10.1f}{b:>11.1f}{best:>10}{a / b:>8.2f}"
        row += f"{matmuls:>9.1f}{adam_only:>8.0f}{bound:>8.1f}{ceiling:>9.2f}"
        print(f"{row}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
