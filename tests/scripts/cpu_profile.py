"""Per-test CPU time, for finding what makes the suite slow on a loaded machine (wall time
there measures the other sessions; CPU time does not).

    PYTHONPATH=$PWD:$PWD/tests/scripts CPU_PROFILE=/tmp/cpu.jsonl \\
        python -m pytest -n 2 --dist=loadfile -p cpu_profile
    python tests/scripts/cpu_profile.py /tmp/cpu.jsonl [N]

Each test's line: its id, worker, wall seconds, and CPU seconds of the worker itself and of
the subprocesses it waited for (`getrusage`), module fixtures' set-up included (it is timed
around the whole test protocol). `<collect>` lines: each worker's collection.
"""

import collections
import json
import os
import resource
import sys
import time

import pytest

OUT = os.environ.get("CPU_PROFILE", "cpu_profile.jsonl")


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _write(test_id: str, start: tuple[float, float, float]) -> None:
    own, children = _cpu()
    record = {
        "id": test_id,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "wall": time.time() - start[0],
        "self": own - start[1],
        "child": children - start[2],
    }
    with open(OUT, "a") as f:
        f.write(json.dumps(record) + "\n")


def pytest_sessionstart(session):
    session.config.stash["cpu_profile_start"] = (time.time(), *_cpu())


def pytest_collection_finish(session):
    _write("<collect>", session.config.stash["cpu_profile_start"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = (time.time(), *_cpu())
    yield
    _write(item.nodeid, start)


def report(path: str, top: int = 30) -> None:
    """Per file, heaviest first: wall, CPU (own + children), children's share."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    files = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for r in rows:
        entry = files[r["id"].split("::")[0]]
        entry[0] += r["wall"]
        entry[1] += r["self"] + r["child"]
        entry[2] += r["child"]
        entry[3] += 1
    print(f"{'file':45s} {'wall':>7s} {'cpu':>7s} {'child':>7s} tests")
    for name, (wall, cpu, child, n) in sorted(files.items(), key=lambda e: -e[1][1])[:top]:
        print(f"{name:45s} {wall:7.1f} {cpu:7.1f} {child:7.1f} {n:5d}")
    total = sum(e[1] for e in files.values())
    print(f"total: {total:.0f} s CPU ({sum(e[2] for e in files.values()):.0f} in subprocesses)")


if __name__ == "__main__":
    report(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
