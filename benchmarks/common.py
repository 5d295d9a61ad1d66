"""Small helpers shared by the benchmark scripts: the command line, machine load, timing."""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A target counts as met only from a quiet machine: above this 1-minute load average (per
# 2 cores; scaled by the core count) other processes take enough CPU for ratios to lie.
QUIET_LOAD_PER_2_CORES = 1.0
_loads_seen: list[float] = []


def busy_limit() -> float:
    return QUIET_LOAD_PER_2_CORES * max(1, os.cpu_count() or 1) / 2


def note_load() -> float:
    """Record the 1-minute load average now (the verdicts use the highest one seen)."""
    load = os.getloadavg()[0]
    _loads_seen.append(load)
    return load


def verdict(ok: bool) -> str:
    """'met' / 'MISSED' when the machine stayed quiet, else 'not judged (busy ...)'.

    The load is read now and compared with every earlier reading of this script (header
    and chunks), so a run that was busy at any point judges nothing.
    """
    peak = max([note_load(), *_loads_seen])
    if peak > busy_limit():
        return f"not judged (busy: load {peak:.2f} > {busy_limit():.1f})"
    return "met" if ok else "MISSED"


def header(note: str = "") -> None:
    """Print the exact command, the CPU count and the load average (how noisy this run is)."""
    script = os.path.relpath(sys.argv[0], ROOT)
    print("command: python " + shlex.join([script, *sys.argv[1:]]))
    note_load()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    quiet = "quiet" if os.getloadavg()[0] <= busy_limit() else "BUSY: targets will not be judged"
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min; {quiet})")
    if note:
        print(note)
    print()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each fn, calling them in turn `repeats` times so noise hits all alike.

    Each fn must block until its work is done (e.g. `jax.block_until_ready`).
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        note_load()
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
