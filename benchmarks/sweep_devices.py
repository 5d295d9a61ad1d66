"""Sweep member-steps per second against device count: 16 members (8 lrs x 2 seeds) split over
`members:N` for N = 1, 2, 4, 8 devices, against the same members one after another.

    python benchmarks/sweep_devices.py [--steps=20] [--width=128] [--quick]

muP MLP (input 40, depth 3, base width 64), Adam, batch 128, random data in memory; the
sweep side is `scaling_training.members.make_members_chunk` as `train.py --lrs --seeds --mesh`
runs it. Each device count runs in its own process (host CPU devices need XLA_FLAGS before
jax starts); the counts are run in turn, twice, and each process times its sides
interleaved after a compile (medians). On a CPU the N host devices share the same cores,
so this shows the overhead of splitting, not a speed-up; on N GPUs it shows the scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import common

LRS = [float(f"{lr:.3g}") for lr in [1e-4 * 3**i for i in range(8)]]
SEEDS = [0, 1]


def child(devices: int, steps: int, width: int) -> dict:
    """Time one sweep chunk on `members:devices` and the members one by one (1 device)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import rules
    import zoo
    from scaling_training import engine
    from scaling_training import members as member_runs
    from scaling_training.models import build
    from scaling_training.sharding import make_plan

    config = zoo.ModelConfig((40,), 10, width=width, depth=3, base_width=64)
    models = [build(config, "mup", seed) for seed in SEEDS]
    splits = [engine.split_model(m) for m in models]
    graphdef = splits[0][0]
    tx = rules.optimizer("adam", LRS[0], rules.param_scales(models[0]), inject=True)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(len(SEEDS), steps, 128, 40)).astype(np.float32)
    ys = rng.integers(0, 10, size=(len(SEEDS), steps, 128)).astype(np.int32)
    count = len(SEEDS) * len(LRS)

    plan = make_plan(f"members:{devices}", False, 128, members=count)
    place = member_runs.MemberPlacement(plan.mesh)
    state = member_runs.init_members(tx, splits, LRS)
    seed_index = np.repeat(np.arange(len(SEEDS), dtype=np.int32), len(LRS))
    inputs = place.members((state, np.ones(count, bool), np.zeros(count, np.int32), seed_index))
    x, y = place.batches(xs), place.batches(ys)
    numbers = place.replicate(np.arange(1, steps + 1, dtype=np.int32))
    sweep_chunk = member_runs.make_members_chunk(
        graphdef, tx, state_sharding=place.member_sharding, replicated=place.replicated
    )

    def sweep() -> None:
        jax.block_until_ready(sweep_chunk(*inputs, x, y, numbers))

    one_chunk = engine.make_train_chunk(graphdef, tx)
    members = [jax.tree.map(lambda a, m=m: a[m], state) for m in range(count)]
    local = [(jnp.asarray(xs[s]), jnp.asarray(ys[s])) for s in range(len(SEEDS))]

    def one_by_one() -> None:
        for m, member in enumerate(members):
            jax.block_until_ready(one_chunk(*member, *local[m // len(LRS)]))

    sweep(), one_by_one()  # compile
    times = common.interleaved({"sweep": sweep, "one_by_one": one_by_one}, 3)
    return {"devices": jax.device_count(), "platform": jax.devices()[0].platform} | times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--quick", action="store_true", help="5 steps, width 64, 1 and 8")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.width, args.counts = 5, 64, [1, 8]
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.width)))
        return
    members = len(LRS) * len(SEEDS)
    common.header(f"{members} members, {args.steps} steps, width {args.width}")
    runs: dict[int, list[dict]] = {n: [] for n in args.counts}
    for _ in range(2):
        for n in args.counts:
            flags = f"--xla_force_host_platform_device_count={n}"
            proc = subprocess.run(
                [sys.executable, __file__, f"--child={n}", f"--steps={args.steps}",
                 f"--width={args.width}"],
                capture_output=True, text=True, env=os.environ | {"XLA_FLAGS": flags},
                timeout=900,
            )  # fmt: skip
            if proc.returncode:
                sys.exit(f"error: the {n}-device process failed:\n{proc.stderr[-2000:]}")
            runs[n].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    member_steps = members * args.steps
    base = statistics.median(r["sweep"] for r in runs[args.counts[0]])
    print(f"{'devices':>8}{'sweep s':>9}{'member-steps/s':>16}{'vs first':>10}"
          f"{'one by one s':>14}{'sweep gain':>12}")  # fmt: skip
    for n in args.counts:
        sweep = statistics.median(r["sweep"] for r in runs[n])
        alone = statistics.median(r["one_by_one"] for r in runs[n])
        print(f"{n:>8}{sweep:>9.3f}{member_steps / sweep:>16.0f}"
              f"{base / sweep:>10.2f}{alone:>14.3f}{alone / sweep:>12.2f}")  # fmt: skip
    print(
        "\nmember-steps/s = optimizer steps of all members per second; vs first = speed "
        "against the first count; sweep gain = the members one after another on one "
        f"device / the sweep ({runs[args.counts[0]][0]['platform']})"
    )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
