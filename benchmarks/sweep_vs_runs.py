"""One 16-lr x 2-seed sweep invocation of train.py against 32 separate invocations.

    python benchmarks/sweep_vs_runs.py [--seeds=2] [--steps=500] [--width=128] [train.py flags]

Both sides are timed as wall clock of whole `train.py` processes (start-up, data, compile,
training, outputs), run one after another, as a user would launch them. Separate runs that
diverge stop early (exit status 3); that is counted as it happens. Target: >= 8x.
The in-process ratio (compile excluded) and the width where vmapping stops paying are
`benchmarks/sweep_in_process.py`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time

import common
import numpy as np

DEFAULTS = ["--width=128", "--base_width=64", "--steps=500", "--optimizer=adam",
            "--eval_every=500", "--log_every=100", "--checkpoint_every=0"]  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{shlex.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    args = sys.argv[1:]
    seeds = 2
    for a in list(args):
        if a.startswith("--seeds="):
            seeds = int(a.split("=")[1])
            args.remove(a)
    names = {a.split("=")[0] for a in args}
    flags = [f for f in DEFAULTS if f.split("=")[0] not in names] + args
    lrs = [float(f"{lr:.3g}") for lr in np.logspace(-4, -1, 16)]
    train = [sys.executable, "train.py", *flags]
    common.header(f"config: train.py {shlex.join(flags)}")
    with tempfile.TemporaryDirectory() as tmp:
        sweep_cmd = [*train, f"--lrs={','.join(map(str, lrs))}", f"--seeds={seeds}",
                     f"--workdir={tmp}/sweep"]  # fmt: skip
        sweep_s, _ = timed(sweep_cmd)
        runs_s, diverged, first = 0.0, 0, None
        for seed in range(seeds):
            for i, lr in enumerate(lrs):
                cmd = [*train, f"--lr={lr}", f"--seed={seed}", f"--workdir={tmp}/run{seed}_{i}"]
                seconds, status = timed(cmd)
                first = first or seconds
                runs_s += seconds
                diverged += status == 3
    n = len(lrs) * seeds
    print(f"{'':<36}{'wall s':>9}")
    print(f"{f'1 sweep: {len(lrs)} lrs x {seeds} seeds (vmap)':<36}{sweep_s:>9.1f}")
    print(f"{f'{n} separate train.py runs':<36}{runs_s:>9.1f}   ({diverged} of them diverged)")
    print(f"{'  of which one run (the first)':<36}{first:>9.1f}")
    ratio = runs_s / sweep_s
    print(f"ratio ({n} runs / sweep): {ratio:.2f}x   target >= 8x: "
          f"{common.verdict(ratio >= 8)}")  # fmt: skip


if __name__ == "__main__":
    main()
