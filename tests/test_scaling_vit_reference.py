"""The coordinate check of the ViT under SGD against an independent float64 numpy ViT
(tests/vit_reference.py), and the ViT's muP LR multipliers against Tensor Programs V's SGD
table (input-like weights and biases: eta x n; hidden: eta; output: eta / n)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import vit_reference as ref
from flax import nnx

import rules
from scaling import coord
from scaling.capture import make_preactivations
from scaling.setup import ProbeModel, normalized_inputs

SPEC = ProbeModel.of(name="vit", rule="mup", base_width=16, input_shape=(8, 8, 1), num_classes=10)
PATHS = {  # reference name -> the model's parameter path
    "input": ("input", "kernel"),
    "cls": ("cls_token", "table"),
    "positions": ("positions", "table"),
    "qkv": ("trunk", "blocks", "qkv", "kernel"),
    "proj": ("trunk", "blocks", "proj", "kernel"),
    "fc1": ("trunk", "blocks", "fc1", "kernel"),
    "fc2": ("trunk", "blocks", "fc2", "kernel"),
    "output": ("output", "kernel"),
}


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _batch(seed=0, size=4):
    x = np.asarray(normalized_inputs((8, 8, 1), size, 1000 + seed), np.float64)
    labels = np.asarray(jax.random.randint(jax.random.key(seed), (size,), 0, 10))
    return x, labels


def test_reference_gradients_match_the_model():
    model = SPEC.build(32, 2, 0)
    p, (x, labels) = ref.params_of(model), _batch()
    apply, params, _ = make_preactivations(model)

    def loss(q):
        logits = apply(q, jnp.asarray(x, jnp.float32))[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    value, grads = jax.value_and_grad(loss)(params)
    ref_loss, ref_grads = ref.gradients(p, x, labels)
    assert float(value) == pytest.approx(ref_loss, rel=1e-5)
    for name, path in PATHS.items():
        got = np.asarray(_at(grads, path))
        scale = np.abs(ref_grads[name]).max()
        assert np.abs(got - ref_grads[name]).max() <= 1e-4 * scale, name


@pytest.mark.parametrize("width", [32])
def test_coord_change_after_one_sgd_step_matches_the_reference(width):
    model = SPEC.build(width, 2, 0)
    p, (x, labels) = ref.params_of(model), _batch(size=8)
    lr = 0.05
    multipliers = {name: float(_at(rules.lr_multipliers(model), path)) for name, path in
                   PATHS.items()}  # fmt: skip
    _, before, _ = ref.forward(p, x)
    _, grads = ref.gradients(p, x, labels)
    _, after, _ = ref.forward(ref.sgd_step(p, grads, lr, multipliers), x)
    measured = coord.trajectory(model, jnp.asarray(x, jnp.float32), labels, "sgd", lr, 1)
    for layer in measured["layers"]:
        rms = float(np.sqrt(np.mean((after[layer] - before[layer]) ** 2)))
        assert measured["change"][layer][1] == pytest.approx(rms, rel=1e-3), layer
        act = float(np.sqrt(np.mean(before[layer] ** 2)))
        assert measured["activation"][layer][0] == pytest.approx(act, rel=1e-5), layer


def test_vit_sgd_lr_multipliers_follow_tensor_programs_v():
    """TP V, SGD: weights whose fan_in does not grow (patch embedding: fan_in = patch
    pixels; the cls token and position tables: one-hot inputs, fan_in 1) and vectors
    (norm scales and biases of width-sized layers) are input-like, LR x n; hidden matrices
    LR x 1; the readout LR / n."""
    spec = ProbeModel.of(
        name="vit", rule="mup", base_width=16, use_bias=True, input_shape=(8, 8, 1),
        num_classes=10, normalization="layer",
    )  # fmt: skip
    n = 4  # width 64 over base 16
    # the multipliers come from the parameters' metadata: an abstract model (no init run)
    model = nnx.eval_shape(lambda: spec.build(64, 2, 0))
    flat = jax.tree_util.tree_flatten_with_path(rules.lr_multipliers(model))[0]
    found = {"/".join(str(k.key) for k in path): float(v) for path, v in flat}
    hidden = ("qkv/kernel", "proj/kernel", "fc1/kernel", "fc2/kernel")
    for path, value in found.items():
        if path.endswith(hidden):
            expected = 1.0
        elif path == "output/kernel":
            expected = 1 / n
        elif path == "output/bias":  # a bias's LR grows with its fan_out: 10 classes, fixed
            expected = 1.0
        else:  # patch embedding, tables, norm scales and the trunk's biases
            expected = n
        assert value == pytest.approx(expected), path
    kinds = {"cls_token/table", "positions/table", "input/kernel", "trunk/norm/scale"}
    assert kinds <= set(found), sorted(found)
