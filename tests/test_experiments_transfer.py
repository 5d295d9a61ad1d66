"""experiments/transformer_transfer.py: adding sizes to an existing result keeps the protocol."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(__file__))
SCRIPT = os.path.join(ROOT, "experiments", "transformer_transfer.py")


@pytest.fixture(scope="module")
def script():
    # experiments/ is a folder of scripts, not an installed package: load the file itself
    spec = importlib.util.spec_from_file_location("transformer_transfer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETTINGS = dict(family="lm", steps=100, batch_size=16, seq_len=16, seeds=1, heads=4,
                base_width=64, base_depth=0, depth=2, width=64, depths="")  # fmt: skip


def entry(width, losses, lrs=None):
    e = {"width": width, "train_loss": [losses], "eta_opt": [0.0], "optimum_at_grid_edge": [False]}
    return e | ({"lrs": lrs} if lrs else {})


def test_protocol_mismatch_names_the_setting(script):
    assert script.protocol_mismatch(SETTINGS, dict(SETTINGS), "width") is None
    # a different --widths or --lrs is what --add is for
    added = SETTINGS | {"widths": "512", "lrs": "1"}
    assert script.protocol_mismatch(SETTINGS, added, "width") is None
    assert "--steps" in script.protocol_mismatch(SETTINGS, SETTINGS | {"steps": 50}, "width")
    assert "--depth" in script.protocol_mismatch(SETTINGS, SETTINGS | {"depth": 4}, "width")
    assert "axis" in script.protocol_mismatch(SETTINGS, SETTINGS | {"depths": "2,4"}, "depth")
    # files written before --head_dim existed used heads fixed (head_dim 0)
    assert script.protocol_mismatch(SETTINGS, SETTINGS | {"head_dim": 0}, "width") is None
    assert "--head_dim" in script.protocol_mismatch(SETTINGS, SETTINGS | {"head_dim": 16}, "width")
    # files written before --optimizer existed were Adam sweeps: Muon sizes do not join them
    assert script.protocol_mismatch(SETTINGS, SETTINGS | {"optimizer": "adam"}, "width") is None
    assert "--optimizer" in script.protocol_mismatch(
        SETTINGS, SETTINGS | {"optimizer": "muon"}, "width"
    )


def test_summary_sorts_sizes_and_keeps_each_sizes_grid(script):
    first, added = entry(128, [2.0, 1.0], [1e-3, 2e-3]), entry(64, [1.5, 1.0], [2e-3, 4e-3])
    first["eta_opt"], added["eta_opt"] = [2e-3], [8e-3]
    record = script.summarize("mup", "width", [first, added], SETTINGS | {"lrs_list": [9.0]}, 1.0)
    assert record["sizes"] == [64, 128]
    assert record["eta_opt"] == [8e-3, 2e-3]
    assert record["shift"] == pytest.approx(4.0)
    assert record["lrs"] == [2e-3, 4e-3]  # the first size's own grid
    assert "lrs_list" not in record["settings"]


def test_summary_takes_the_seed_mean_curves_optimum_when_there_is_one(script):
    old, new = entry(64, [1.0, 2.0, 3.0]), entry(128, [1.0, 2.0, 3.0])
    old["eta_opt"] = [1e-3, 4e-3]  # written before lr_opt: the mean of per-seed optima
    new["eta_opt"], new["lr_opt"] = [1e-3, 4e-3], 2e-3
    record = script.summarize("mup", "width", [old, new], SETTINGS | {"lrs_list": [1.0]}, 1.0)
    assert record["eta_opt"] == [pytest.approx(2.5e-3), 2e-3]


def test_add_with_another_protocol_is_one_line_and_status_2(tmp_path):
    with open(tmp_path / "mup.json", "w") as f:
        json.dump({"settings": SETTINGS, "results": [], "lrs": [1e-3], "seconds": 0.0}, f)
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--rules=mup", "--widths=512", "--steps=50", "--add",
         f"--out={tmp_path}"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--steps" in proc.stderr
    assert "Traceback" not in proc.stderr
