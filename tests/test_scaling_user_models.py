"""The probes on a user's own model, built with flax's layers and `rules.parametrize`."""

import json
import os
import subprocess
import sys

import pytest
from user_mlp import build

from scaling.testing import ModelFamily, assert_update_sizes_transfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_MODEL = os.path.join(ROOT, "tests", "user_mlp.py") + ":build"


def family(rule_name: str) -> ModelFamily:
    import rules

    rule = rules.get(rule_name)
    return ModelFamily(lambda width, depth, seed: build(width, depth, seed, rule, "sgd"), (40,), 10)


def test_mup_keeps_a_user_models_update_sizes_across_widths():
    ratios = assert_update_sizes_transfer(family("mup"), widths=(256, 512), depth=3, seeds=4)
    assert set(ratios) == {"first", "middle/0", "middle/1", "last"}  # every parameter layer


def test_sp_grows_a_user_models_readout_update():
    with pytest.raises(AssertionError, match="last"):
        assert_update_sizes_transfer(family("sp"), widths=(256, 512), depth=3, seeds=4)


def run_probe(*args, out):
    return subprocess.run(
        [sys.executable, "-m", "scaling", *args, f"--out={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


GOOD = {
    probe: [
        probe,
        f"--model={USER_MODEL}",
        "--rule=mup",
        "--widths=64,128",
        "--depths=2",
        "--seeds=2",
    ]  # fmt: skip
    for probe in ("update", "coord")
}
BAD_MODELS = [
    ("nowhere.py:build", "update", "no file"),
    (USER_MODEL.replace(":build", ":missing"), "update", "no function"),
    (USER_MODEL, "transfer", "coord and update"),
]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """GOOD's and BAD_MODELS' command lines in one interpreter (tests/cli_cases.py): id ->
    {"status", "stderr", "stdout", "same", "out" (its --out folder)}. A real process is run
    for one refusal below (test_a_real_process_refuses_a_missing_function)."""
    from cli_cases import run_cases

    folder = tmp_path_factory.mktemp("user_model_runs")
    cases = {key: (args, folder / key) for key, args in GOOD.items()}
    for model, probe, words in BAD_MODELS:
        cases[words] = ([probe, f"--model={model}", "--widths=64,128"], folder / words)
    cases = {key: ([*args, f"--out={out}"], out) for key, (args, out) in cases.items()}
    results = run_cases("scaling", cases, folder)
    return {key: r | {"out": cases[key][1]} for key, r in results.items()}


@pytest.mark.parametrize("probe", sorted(GOOD))
def test_cli_probes_take_a_user_model(cli_runs, probe):
    proc = cli_runs[probe]
    assert proc["status"] == 0, proc["stderr"]
    record = json.loads((proc["out"] / f"{probe}.json").read_text())
    assert record["model"] == USER_MODEL
    assert "last" in json.dumps(record)  # the user's readout was measured


@pytest.mark.parametrize("model, probe, words", BAD_MODELS)
def test_cli_refuses_a_bad_user_model_in_one_line(cli_runs, model, probe, words):
    from cli_cases import one_line

    proc = cli_runs[words]
    line = one_line(proc)
    assert "--model" in line and words in line, proc["stderr"]
    assert proc["same"] and not proc["out"].exists()


def test_a_real_process_refuses_a_missing_function(tmp_path):
    """The refusal as a user sees it from `python -m scaling` (the file is imported)."""
    model, probe, words = BAD_MODELS[1]
    proc = run_probe(probe, f"--model={model}", "--widths=64,128", out=tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model" in lines[0] and words in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
