"""One-step update sizes: exactness of the first-order formula and what rules claim."""

import jax
import numpy as np
import pytest

from scaling.setup import ProbeModel, normalized_inputs
from scaling.update import max_update_lr, measure, real_step_sizes, update_sizes


def hidden(sizes):
    return max(v for k, v in sizes.items() if k.startswith("hidden"))


def test_first_order_matches_a_real_small_step():
    model = ProbeModel.of(rule="mean_field").build(128, 4, 0)
    x = normalized_inputs((40,), 1, 1)
    y = jax.random.normal(jax.random.key(2), (1, 10))
    first, real = update_sizes(model, x, y), real_step_sizes(model, x, y, 1e-4)
    assert set(first) == {"input", "hidden/0", "hidden/1", "hidden/2", "output"}
    for layer in first:
        assert real[layer] == pytest.approx(first[layer], rel=2e-2), layer


def test_max_update_lr_criteria():
    sizes = {"a": 1.0, "b": 4.0}
    assert max_update_lr(sizes, "max") == pytest.approx(0.5)
    assert max_update_lr(sizes, "mean") == pytest.approx(np.sqrt(1 / 2.5))
    with pytest.raises(ValueError, match="criterion"):
        max_update_lr(sizes, "median")


def _hidden_ratio(rule, widths=(256, 512)):
    result = measure(ProbeModel.of(rule=rule), widths, [3], seeds=4)["results"]
    return hidden(result[1]["C"]) / hidden(result[0]["C"])


def test_mup_hidden_updates_stay_flat_in_width_while_sp_grows():
    mup, sp = _hidden_ratio("mup"), _hidden_ratio("sp")
    assert 0.75 < mup < 1.33, f"muP hidden C ratio across widths 256 -> 512 was {mup:.3f}"
    assert sp > 1.6, f"SP hidden C should grow ~ width, ratio was {sp:.3f}"


def test_mean_field_maximal_update_lr_falls_with_depth():
    """Jelassi et al.: eta* ~ L^-3/2 for ReLU MLPs. Across L = 4 -> 8 at width 256 the code
    measures about 2^-1.6 (the finite-width corrections grow like exp(c L / n))."""
    result = measure(ProbeModel.of(rule="mean_field"), [256], [4, 8], seeds=4)["results"]

    def eta(entry):
        return np.mean(
            [
                max_update_lr({k: v for k, v in zip(entry["layers"], s) if k.startswith("hidden")})
                for s in entry["C_per_seed"]
            ]
        )

    ratio = eta(result[1]) / eta(result[0])
    exponent = np.log2(ratio)
    assert -2.0 < exponent < -1.0, f"depth exponent {exponent:.2f}"
