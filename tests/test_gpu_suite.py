"""benchmarks/gpu_suite.py: its FLOP count, its budget guard, its output (a tiny CPU run)."""

import dataclasses
import importlib
import json
import os
import sys

import jax
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")
OWN = ("gpu_suite", "common", "rule_overhead", "sweep_in_process")


@pytest.fixture(scope="module")
def suite():
    # benchmarks/ is a folder of scripts importing each other by bare name: put it on the path
    # for this module only, and forget those modules afterwards
    sys.path.insert(0, BENCHMARKS)
    try:
        yield importlib.import_module("gpu_suite")
    finally:
        sys.path.remove(BENCHMARKS)
        for name in OWN:
            sys.modules.pop(name, None)


def test_step_flops_count_the_matmuls_of_an_unrolled_step(suite):
    config, name, _ = suite.mlp(suite.TINY)
    width, batch = suite.TINY.mlp
    xs, ys = suite.data(config, name, 1, batch)
    flops = suite.step_flops(config, name, xs[0], ys[0])
    matmuls = 6 * batch * (784 * width + width * width + width * 10)  # forward + 2 backward
    assert 1.0 <= flops / matmuls < 1.15  # the rest: activations, loss, Adam
    # a scanned model is counted unrolled (a scan's body would be counted once): the tiny lm
    # with 2 blocks scanned (the peak section counts the lm as built, scanned); ResNet-20, the
    # smallest with 2 scanned blocks a stage, took ~3x as long to trace
    width, _, length, batch = suite.TINY.lm
    config, name, _ = suite.lm(dataclasses.replace(suite.TINY, lm=(width, 2, length, batch)))
    assert config.scan_blocks
    xs, ys = suite.data(config, name, 1, batch)
    scanned = suite.step_flops(config, name, xs[0], ys[0])
    loop = dataclasses.replace(config, scan_blocks=False)
    assert scanned == suite.step_flops(loop, name, xs[0], ys[0])
    model = suite.nnx.eval_shape(lambda: suite.zoo.build(name, config, suite.rules.mup,
                                                         suite.nnx.Rngs(0)))  # fmt: skip
    graphdef, params, rest = suite.split_model(model)
    tx = suite.rules.optimizer("adam", 1e-3, suite.rules.param_scales(model), inject=True)
    opt_state = jax.eval_shape(tx.init, params)
    lowered = jax.jit(suite.make_step(graphdef, tx)).lower(params, rest, opt_state, xs[0], ys[0])
    body_once = lowered.cost_analysis()["flops"]
    assert body_once < 0.9 * scanned


def test_section_skips_what_would_overrun_and_records_errors(suite):
    section = suite.Section(seconds=1e-9)
    assert section.item("first", lambda: [{"x": 1.0}])[0]["status"] == "skipped: budget"
    section = suite.Section(seconds=60)
    assert section.item("ok", lambda: [{"x": 1.0}]) == [{"item": "ok", "x": 1.0, "status": "ok"}]
    row = section.item("bad", lambda: 1 / 0)[0]
    assert row["status"].startswith("error: ZeroDivisionError")
    section.longest = 120  # an item as long as the longest so far would overrun
    assert section.item("next", lambda: [{"x": 1.0}])[0]["status"] == "skipped: budget"


def test_bad_input_exits_2_and_writes_nothing(suite, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OUT", raising=False)
    assert suite.main(["--tiny"]) == 2
    assert suite.main(["--tiny", "--out", str(tmp_path / "o"), "--budget", "0"]) == 2
    assert not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("gpu_suite: ") for line in err)


def read(out):
    with open(out / "gpu_suite.json") as f:
        result = json.load(f)
    assert (out / "gpu_suite.md").read_text().count("\n## ") == len(result["sections"])
    return result


def test_tiny_overhead_section_writes_its_table(suite, tmp_path):
    args = ["--tiny", "--out", str(tmp_path), "--sections", "overhead", "--budget", "1e6"]
    assert suite.main(args) == 0  # a budget no loaded CI machine can overrun
    result = read(tmp_path)
    assert result["environment"]["device"].startswith("cpu")
    rows = result["sections"]["overhead"]["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r in rows:
        assert r["ours / plain"] == pytest.approx(r["ours ms"] / r["plain ms"])


@pytest.mark.slow
def test_tiny_run_measures_every_section(suite, tmp_path):
    assert suite.main(["--tiny", "--out", str(tmp_path), "--budget", "1e6"]) == 0
    result = read(tmp_path)
    assert list(result["sections"]) == list(suite.SHARES)
    for name, section in result["sections"].items():
        assert section["rows"] and all(r["status"] == "ok" for r in section["rows"]), name
    peak = result["sections"]["peak"]["rows"]
    assert [r["dtype"] for r in peak] == ["float32", "bfloat16"] * 4
    scan = result["sections"]["scan"]["rows"]
    assert any("from conv" in r["item"] for r in scan)
