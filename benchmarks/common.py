"""Small helpers shared by the benchmark scripts: the command line, machine load, timing."""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def header(note: str = "") -> None:
    """Print the exact command, the CPU count and the load average (how noisy this run is)."""
    script = os.path.relpath(sys.argv[0], ROOT)
    print("command: python " + shlex.join([script, *sys.argv[1:]]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    if note:
        print(note)
    print()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each fn, calling them in turn `repeats` times so noise hits all alike.

    Each fn must block until its work is done (e.g. `jax.block_until_ready`).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
