"""Start-up: wall time of `train.py --help` and time to the first training step of the default run.

    python benchmarks/startup.py [--repeats=3]

`--help` is timed against `python -c pass` (the interpreter alone). The default run is
`train.py --steps=1 --checkpoint_every=0` (other flags at their defaults, a fresh workdir;
without checkpoints off, the run would save its final checkpoint, step 1, before printing
the progress line; the default run's first checkpoint comes at step 1000, but it does import
orbax before step 1, ~0.3 s not counted here);
its stdout is read line by line, unbuffered, to stamp when the model report's mesh line
appears (imports, data, model built) and when the first progress line appears (the first
step compiled and run; that line also carries the step-1 evaluation). Medians of repeats;
the same with the MNIST-1D cache off (generated in every run) for comparison.
Targets: `--help` <= 1.5 s, first step <= 6 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common


def wall(cmd: list[str], expect: str = "") -> float:
    """Seconds `cmd` takes; its output must contain `expect` (absl's --help exits 1)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if expect not in proc.stdout + proc.stderr:
        sys.exit(f"{cmd} did not print {expect!r}:\n{proc.stderr[-2000:]}")
    return seconds


def first_step(workdir: str, **env_vars: str) -> tuple[float, float, float]:
    """(seconds to the mesh line, to the first progress line, to exit) of `train.py --steps=1`."""
    cmd = [sys.executable, "train.py", "--steps=1", "--checkpoint_every=0", f"--workdir={workdir}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env_vars)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=common.ROOT, stdout=subprocess.PIPE, text=True, env=env)
    mesh = step = float("nan")
    for line in proc.stdout:
        now = time.perf_counter() - start
        if line.startswith("mesh ") and mesh != mesh:
            mesh = now
        if "step 1/1" in line and step != step:
            step = now
    proc.wait()
    return mesh, step, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    common.header()
    bare = statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(repeats))
    help_s = statistics.median(
        wall([sys.executable, "train.py", "--help"], "--model") for _ in range(repeats)
    )
    runs, uncached = [], []
    with tempfile.TemporaryDirectory() as tmp:
        first_step(os.path.join(tmp, "warm"))  # fills the MNIST-1D cache if it is empty
        for i in range(repeats):
            runs.append(first_step(os.path.join(tmp, str(i))))
            # an unwritable cache directory: MNIST-1D is generated every time, as before
            no_cache = first_step(os.path.join(tmp, f"n{i}"), SCALING_RULES_CACHE="/dev/null/x")
            uncached.append(no_cache[1])
    mesh, step, total = (statistics.median(r[k] for r in runs) for k in range(3))
    print(f"{'':<48}{'s':>7}{'target':>9}")
    print(f"{'python -c pass':<48}{bare:>7.2f}")
    print(f"{'train.py --help':<48}{help_s:>7.2f}{'<= 1.5':>9}  "
          f"{common.verdict(help_s <= 1.5)} ({help_s / 1.5:.2f}x of target)")  # fmt: skip
    print(f"{'default run: imports, data, model (mesh line)':<48}{mesh:>7.2f}")
    print(f"{'default run: first step done (+ step-1 eval)':<48}{step:>7.2f}{'<= 6':>9}  "
          f"{common.verdict(step <= 6)} ({step / 6:.2f}x of target)")  # fmt: skip
    print(f"{'default run --steps=1: process exit':<48}{total:>7.2f}")
    print(f"{'first step without the MNIST-1D cache':<48}{statistics.median(uncached):>7.2f}"
          f"   (cache: {statistics.median(uncached) / step:.2f}x faster)")  # fmt: skip


if __name__ == "__main__":
    main()
