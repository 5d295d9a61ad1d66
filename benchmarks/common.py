"""Small helpers shared by the benchmark scripts: the command line, machine load, timing."""

from __future__ import annotations

import atexit
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A target counts as met only from a quiet machine. Two checks: the 1-minute load average
# when the script starts (before it runs anything heavy) and the CPU that *other* processes
# used while it ran, from /proc/stat minus this process and its waited children (the load
# average itself would count the benchmark's own threads: a 2-thread benchmark drives it
# to ~2 on 2 cores after a minute).
QUIET_LOAD_PER_2_CORES = 1.0
OTHERS_CPU_PER_2_CORES = 0.25  # cores used by other processes, averaged over the run
_start: dict[str, float] = {}


def _scaled(per_2_cores: float) -> float:
    return per_2_cores * max(1, os.cpu_count() or 1) / 2


def busy_limit() -> float:
    return _scaled(QUIET_LOAD_PER_2_CORES)


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, CPU s used by the whole machine, CPU s used by us and our children), Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    mine = os.times()
    own = mine.user + mine.system + mine.children_user + mine.children_system
    return time.monotonic(), busy, own


def others_cpu() -> float | None:
    """Cores used by other processes on average since `header()`; None where unknown."""
    now = cpu_snapshot()
    if now is None or "wall" not in _start or now[0] - _start["wall"] < 1e-3:
        return None
    busy = (now[1] - _start["busy"]) - (now[2] - _start["own"])
    return max(0.0, busy / (now[0] - _start["wall"]))


def verdict(ok: bool) -> str:
    """'met' / 'MISSED' when the machine stayed quiet, else 'not judged (busy ...)'.

    Quiet: load average <= 1 per 2 cores at the start and other processes using <= 0.25
    cores per 2 cores on average while the script ran.
    """
    load = _start.get("load", os.getloadavg()[0])
    if load > busy_limit():
        return f"not judged (busy: load {load:.2f} > {busy_limit():.1f} at the start)"
    others = others_cpu()
    if others is not None and others > _scaled(OTHERS_CPU_PER_2_CORES):
        return f"not judged (busy: other processes used {others:.2f} cores meanwhile)"
    return "met" if ok else "MISSED"


def header(note: str = "") -> None:
    """Print the exact command, the CPU count and the load average (how noisy this run is)."""
    script = os.path.relpath(sys.argv[0], ROOT)
    print("command: python " + shlex.join([script, *sys.argv[1:]]))
    _start["load"] = os.getloadavg()[0]
    snapshot = cpu_snapshot()
    if snapshot is not None:
        _start["wall"], _start["busy"], _start["own"] = snapshot
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    quiet = "quiet" if _start["load"] <= busy_limit() else "BUSY: targets will not be judged"
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min; {quiet})")
    if note:
        print(note)
    print()
    atexit.register(footer)


def footer() -> None:
    """Print how much CPU other processes took while the script ran (the noise it saw)."""
    others = others_cpu()
    if others is not None:
        print(f"\nother processes used {others:.2f} cores on average during this run "
              f"(limit for verdicts: {_scaled(OTHERS_CPU_PER_2_CORES):.2f})")  # fmt: skip


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
