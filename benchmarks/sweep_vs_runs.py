"""One 16-lr sweep invocation of train.py against 16 separate invocations of the same config.

    python benchmarks/sweep_vs_runs.py [--steps=500] [--width=128] [extra train.py flags]

Both sides are timed as wall clock of whole `train.py` processes (start-up, data, compile,
training, outputs), run one after another, as a user would run them. Separate runs that
diverge stop early (exit status 3); that is counted as it happens.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = ["--width=128", "--base_width=64", "--steps=500", "--optimizer=adam",
            "--eval_every=500", "--log_every=100", "--checkpoint_every=0"]  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{shlex.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    names = {a.split("=")[0] for a in sys.argv[1:]}
    flags = [f for f in DEFAULTS if f.split("=")[0] not in names] + sys.argv[1:]
    lrs = [float(f"{lr:.3g}") for lr in np.logspace(-4, -1, 16)]
    train = [sys.executable, "train.py", *flags]
    with tempfile.TemporaryDirectory() as tmp:
        sweep_cmd = [*train, f"--lrs={','.join(map(str, lrs))}", f"--workdir={tmp}/sweep"]
        sweep_s, _ = timed(sweep_cmd)
        runs_s, diverged = 0.0, 0
        for i, lr in enumerate(lrs):
            seconds, status = timed([*train, f"--lr={lr}", f"--workdir={tmp}/run{i}"])
            runs_s += seconds
            diverged += status == 3
    print(f"command: python benchmarks/sweep_vs_runs.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"config:  train.py {shlex.join(flags)}")
    print(f"{'':<28}{'wall s':>9}")
    print(f"{'1 sweep of 16 lrs (vmap)':<28}{sweep_s:>9.1f}")
    print(f"{'16 separate train.py runs':<28}{runs_s:>9.1f}   ({diverged} of them diverged)")
    print(f"ratio (16 runs / sweep): {runs_s / sweep_s:.2f}x")


if __name__ == "__main__":
    main()
