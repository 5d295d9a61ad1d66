"""Coordinate check, sharpness and the one-step loss polynomial."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from scaling import coord, poly, sharpness
from scaling.setup import ProbeModel, normalized_inputs
from scaling_training.engine import split_model


def test_coord_check_separates_mup_from_sp():
    widths = [128, 256, 512]
    mup = coord.measure(ProbeModel.of(rule="mup", optimizer="adam"), widths, 3, 2, 1e-2, 3, "adam")
    sp = coord.measure(ProbeModel.of(rule="sp", optimizer="adam"), widths, 3, 2, 1e-2, 3, "adam")
    for layer in mup["layers"]:
        assert abs(mup["slopes"][layer]["activation"]) < 0.1, layer
        assert abs(mup["slopes"][layer]["change"]) < 0.1, layer
    assert sp["slopes"]["output"]["activation"] > 0.5  # SP's logits blow up with width
    assert sp["slopes"]["hidden/0"]["change"] > 0.5
    steps = mup["runs"]["128"]["change"]["input"]
    assert len(steps) == 4 and steps[0] == 0.0


def test_power_iteration_matches_the_dense_hessian():
    # width 16 over base 8: the multipliers differ by layer (0.5, 1, 2), so a preconditioning
    # left out shows, and the dense Hessian (1056 parameters) stays cheap to decompose
    spec = ProbeModel.of(rule="mup", base_width=8)
    model = spec.build(16, 2, 0)
    x = normalized_inputs((40,), 32, 1)
    labels = jax.random.randint(jax.random.key(0), (32,), 0, 10)
    top = sharpness.top_eigenvalue(model, x, labels, iterations=100)

    graphdef, params, rest = split_model(model)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    import rules

    full = jax.tree.map(lambda m, p: jnp.full(p.shape, m), rules.lr_multipliers(model), params)
    root = np.sqrt(np.asarray(jax.flatten_util.ravel_pytree(full)[0]))

    def loss(f):
        logits = nnx.merge(graphdef, unravel(f), rest)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    hessian = np.asarray(jax.jit(jax.hessian(loss))(flat)) * np.outer(root, root)
    assert top == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=1e-3)


def linear_spec(rule):
    return ProbeModel.of(rule=rule, activation="linear", use_bias=False)


def test_one_step_loss_polynomial_is_exact():
    model = linear_spec("mup").build(64, 3, 0)
    x = normalized_inputs((40,), 8, 1)
    y = jax.random.normal(jax.random.key(2), (8, 10))
    p = poly.one_step_loss(model, x, y)
    assert p.degree() == 8  # 4 weight matrices: degree 4 output, degree 8 loss

    import rules

    graphdef, params, rest = split_model(model)
    multipliers = rules.lr_multipliers(model)

    def loss(q):
        return 0.5 * jnp.mean(jnp.sum((nnx.merge(graphdef, q, rest)(x) - y) ** 2, -1))

    grads = jax.jit(jax.grad(loss))(params)  # compiled once, not op by op
    for eta in (0.0, 0.01, 0.05):
        stepped = jax.tree.map(lambda w, g, m, e=eta: w - e * m * g, params, grads, multipliers)
        assert p(eta) == pytest.approx(float(jax.jit(loss)(stepped)), rel=1e-4)


def _optimum_ratio(rule):
    result = poly.measure(linear_spec(rule), [128, 512], 3, seeds=2)["results"]
    return np.mean(result[1]["eta_opt"]) / np.mean(result[0]["eta_opt"])


def test_mup_one_step_optimum_converges_in_width_while_sp_shifts_to_zero():
    """Hayou 2025 on deep linear MLPs: muP's optimal LR converges; SP's falls like 1/width."""
    assert 0.8 < _optimum_ratio("mup") < 1.25
    assert _optimum_ratio("sp") < 0.4


def test_poly_refuses_nonlinear_models():
    with pytest.raises(ValueError, match="deep linear MLP"):
        poly.measure(ProbeModel.of(rule="mup"), [64, 128], 2, 1)
