"""Benchmark verdicts: a target is judged only on a quiet machine."""

import importlib.util
import os

import pytest

COMMON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "common.py")


@pytest.fixture
def common(monkeypatch):
    # benchmarks/ is a folder of scripts, not an installed package: load the file itself
    spec = importlib.util.spec_from_file_location("benchmark_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "_start", {})
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(module.atexit, "register", lambda fn: None)
    return module


def machine(common, monkeypatch, load, snapshots):
    """Fake load average and a sequence of (wall, machine CPU s, our CPU s) readings."""
    readings = iter(snapshots)
    monkeypatch.setattr(common.os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(common, "cpu_snapshot", lambda: next(readings))
    common.header()


def test_quiet_machine_judges(common, monkeypatch):
    # 10 s of run: the machine did 19.5 CPU s, of which 19 were ours -> others 0.05 cores
    machine(common, monkeypatch, 0.3, [(0.0, 0.0, 0.0), (10.0, 19.5, 19.0), (10.0, 19.5, 19.0)])
    assert common.verdict(True) == "met"
    assert common.verdict(False) == "MISSED"


def test_our_own_threads_do_not_count_as_busy(common, monkeypatch):
    # both cores busy for 100 s, all of it ours: the load average would read ~2, still quiet
    machine(common, monkeypatch, 0.2, [(0.0, 0.0, 0.0), (100.0, 200.0, 199.0)])
    assert common.verdict(True) == "met"


def test_other_processes_during_the_run_judge_nothing(common, monkeypatch):
    # quiet at the start, then another process took one core for the whole run
    machine(common, monkeypatch, 0.2, [(0.0, 0.0, 0.0), (10.0, 20.0, 10.0)])
    verdict = common.verdict(True)
    assert verdict.startswith("not judged") and "1.00 cores" in verdict


def test_busy_at_the_start_judges_nothing(common, monkeypatch):
    machine(common, monkeypatch, 3.5, [(0.0, 0.0, 0.0), (10.0, 10.0, 10.0)])
    verdict = common.verdict(True)
    assert verdict.startswith("not judged") and "3.50" in verdict


def test_real_snapshot_counts_our_cpu():
    spec = importlib.util.spec_from_file_location("benchmark_common_real", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = module.cpu_snapshot()
    if first is None:
        pytest.skip("no /proc/stat on this system")
    sum(i * i for i in range(2_000_000))  # burn some CPU in this process
    second = module.cpu_snapshot()
    assert second[2] > first[2] and second[1] >= first[1] and second[0] > first[0]
