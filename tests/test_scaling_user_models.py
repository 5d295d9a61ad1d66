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


@pytest.mark.parametrize("probe", ["update", "coord"])
def test_cli_probes_take_a_user_model(probe, tmp_path):
    proc = run_probe(
        probe, f"--model={USER_MODEL}", "--rule=mup", "--widths=64,128", "--depths=2",
        "--seeds=2", out=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / f"{probe}.json").read_text())
    assert record["model"] == USER_MODEL
    assert "last" in json.dumps(record)  # the user's readout was measured


@pytest.mark.parametrize(
    "model, probe, words",
    [
        ("nowhere.py:build", "update", "no file"),
        (USER_MODEL.replace(":build", ":missing"), "update", "no function"),
        (USER_MODEL, "transfer", "coord and update"),
    ],
)
def test_cli_refuses_a_bad_user_model_in_one_line(model, probe, words, tmp_path):
    proc = run_probe(probe, f"--model={model}", "--widths=64,128", out=tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model" in lines[0] and words in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
