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
    monkeypatch.setattr(module, "_loads_seen", [])
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    return module


def test_quiet_machine_judges(common, monkeypatch):
    monkeypatch.setattr(common.os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    assert common.verdict(True) == "met"
    assert common.verdict(False) == "MISSED"


def test_busy_at_any_reading_judges_nothing(common, monkeypatch):
    loads = iter([3.5, 0.2])
    monkeypatch.setattr(common.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    common.note_load()  # busy while the sides ran
    verdict = common.verdict(True)  # quiet again at the end
    assert verdict.startswith("not judged") and "3.50" in verdict
