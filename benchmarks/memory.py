"""Memory: peak resident memory (ru_maxrss) of train.py runs at two widths and of a sweep.

    python benchmarks/memory.py [--widths 128 1024] [--steps=200]

Each configuration is one `train.py` subprocess (muP MLP, Adam, MNIST-1D, checkpoints
off); its peak RSS is read from `os.wait4`'s resource usage, per child. The sweep is
`--lrs` with 16 learning rates at the first width. `python -c "import jax, flax"` is shown as
the floor every run pays. Target: the 16-member sweep <= 4x one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import common
import numpy as np


def peak_mib(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, cwd=common.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="width 64, 20 steps")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.steps = [64], 20
    common.header()
    lrs = ",".join(f"{lr:.3g}" for lr in np.logspace(-4, -1, 16))
    py = sys.executable
    imports = "import jax, flax.nnx, optax; jax.numpy.zeros(1).block_until_ready()"
    floor = peak_mib([py, "-c", imports])
    rows = [("python: import jax, flax, optax", floor)]
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.widths:
            flags = [f"--width={w}", f"--steps={args.steps}", "--optimizer=adam",
                     "--checkpoint_every=0", "--noplots"]  # fmt: skip
            one = peak_mib([py, "train.py", *flags, f"--workdir={tmp}/run{w}"])
            rows.append((f"train.py width {w}: one run", one))
            if w == args.widths[0]:
                sweep = peak_mib([py, "train.py", *flags, f"--lrs={lrs}", f"--workdir={tmp}/s{w}"])
                rows.append((f"train.py width {w}: sweep of 16 lrs", sweep))
                ratio = sweep / one
    print(f"{'':<40}{'peak RSS MiB':>13}")
    for label, mib in rows:
        print(f"{label:<40}{mib:>13.0f}")
    print(f"\nsweep / one run at width {args.widths[0]}: {ratio:.2f}x   target <= 4x: "
          f"{common.verdict(ratio <= 4)}")  # fmt: skip


if __name__ == "__main__":
    main()
