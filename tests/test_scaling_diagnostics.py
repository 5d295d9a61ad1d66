"""Per-layer diagnostics of one step against a hand computation (numpy, float64) on a
two-layer ReLU MLP: relative update sizes, alignment ratio, effective LR."""

import jax
import numpy as np
import pytest

import rules
from scaling import diagnostics
from scaling.setup import ProbeModel, normalized_inputs


def _hand(model, x, labels, optimizer, lr):
    """Forward, backward and one step of x -> relu(m1 x W1) -> m2 h W2 in numpy."""
    w1 = np.asarray(model.input.kernel[...], np.float64)
    w2 = np.asarray(model.output.kernel[...], np.float64)
    m1, m2 = float(model.input.multiplier), float(model.output.multiplier)
    lr1, lr2 = (float(rules.lr_multipliers(model)[k]["kernel"]) for k in ("input", "output"))
    x = np.asarray(x, np.float64)
    z1 = m1 * x @ w1
    h = np.maximum(z1, 0)
    logits = m2 * h @ w2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(w2.shape[1])[labels]) / len(x)
    g2 = m2 * h.T @ d
    g1 = m1 * x.T @ ((m2 * d @ w2.T) * (z1 > 0))
    if optimizer == "sgd":
        dw1, dw2 = -lr * lr1 * g1, -lr * lr2 * g2
    else:  # Adam's first step: bias-corrected m / sqrt(v) = g / (|g| + eps)
        dw1 = -lr * lr1 * g1 / (np.abs(g1) + 1e-8)
        dw2 = -lr * lr2 * g2 / (np.abs(g2) + 1e-8)
    out = {}
    for name, w, dw, g, inp, m, mult in [
        ("input/kernel", w1, dw1, g1, x, m1, lr1),
        ("output/kernel", w2, dw2, g2, h, m2, lr2),
    ]:
        out[name] = {
            "rel_update_fro": np.linalg.norm(dw) / np.linalg.norm(w),
            "rel_update_spectral": np.linalg.norm(dw, 2) / np.linalg.norm(w, 2),
            "effective_lr": np.linalg.norm(dw) / np.linalg.norm(g),
            "alignment_ratio": (np.linalg.norm(m * inp @ dw) / np.linalg.norm(dw))
            / (np.linalg.norm(m * inp @ w) / np.linalg.norm(w)),
            "lr_multiplier": mult,
            "fan_in": w.shape[0],
        }
    return out


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_diagnostics_match_a_hand_computation(optimizer):
    spec = ProbeModel.of(rule="mup", base_width=16, optimizer=rules.OPTIMIZERS[optimizer],
                      input_shape=(12,), num_classes=5)  # fmt: skip
    model = spec.build(48, 1, 0)
    x = normalized_inputs((12,), 16, 1)
    labels = np.asarray(jax.random.randint(jax.random.key(0), (16,), 0, 5))
    lr = 0.1
    got = diagnostics.one_step(model, x, labels, optimizer, lr)
    want = _hand(model, x, labels, optimizer, lr)
    assert set(got) == set(want)
    for name, entry in want.items():
        for field, value in entry.items():
            assert got[name][field] == pytest.approx(value, rel=2e-3), (name, field)
        exponent = 0.5 + np.log(entry["alignment_ratio"]) / np.log(entry["fan_in"])
        assert got[name]["alignment_exponent"] == pytest.approx(exponent, rel=2e-3)
    if optimizer == "sgd":  # the measured step per unit gradient is the rule's LR exactly
        for name in want:
            assert got[name]["effective_lr"] == pytest.approx(lr * want[name]["lr_multiplier"])
    # muP at width 48 / base 16: readout LR / 3, hidden (here: none) and input LR as set
    assert want["output/kernel"]["lr_multiplier"] == pytest.approx(1 / 3)


def test_alignment_of_a_gradient_step_exceeds_chance():
    """An SGD step's update x^T d is built from the layer's input, so it moves the layer's
    output far more than a weight-shaped change of the same norm: exponent near 1."""
    spec = ProbeModel.of(rule="mup", base_width=64, input_shape=(12,), num_classes=5)
    model = spec.build(256, 1, 0)
    x = normalized_inputs((12,), 4, 1)
    got = diagnostics.one_step(model, x, np.arange(4) % 5, "sgd", 0.1)
    assert got["output/kernel"]["alignment_exponent"] > 0.8
    assert got["output/kernel"]["alignment_ratio"] > 4
