"""`update` reports coord's per-parameter diagnostics of one real step, per swept size."""

from types import SimpleNamespace

import pytest

from scaling.inputs import ProbeInputs
from scaling.report_one_step import _one_step_diagnostics, diagnostics_table
from scaling.setup import ProbeModel


def test_update_diagnostics_per_size_with_slopes_and_sgd_effective_lr():
    req = SimpleNamespace(spec=ProbeModel.of("mup", name="mlp"), seeds=1, optimizer="sgd", lr=0.01)
    results = [{"width": 64, "depth": 2}, {"width": 128, "depth": 2}]
    out = _one_step_diagnostics(req, results, "width", [64, 128], ProbeInputs())
    assert set(out["diagnostics"]) == {"64", "128"}
    for width in ("64", "128"):
        for entry in out["diagnostics"][width].values():
            # SGD: ||dW|| / ||g|| is exactly lr x the rule's multiplier
            assert entry["effective_lr"] == pytest.approx(0.01 * entry["lr_multiplier"], 1e-4)
    # muP's SGD multipliers relative to base width 64: input x n, readout / n
    slopes = out["diagnostic_slopes"]
    assert slopes["input/kernel"]["effective_lr"] == pytest.approx(1.0, abs=1e-3)
    assert slopes["output/kernel"]["effective_lr"] == pytest.approx(-1.0, abs=1e-3)
    assert "output/kernel" in diagnostics_table(out, 128)
