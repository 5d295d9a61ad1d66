"""rules.Conv's `implementation`: "lax" gives the numbers of the default im2col, forward and
gradients, for the layer and for a whole zoo ResNet; the default stays im2col."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo


def pair(meta, kernel, **kw):
    """The same layer (same parameters) in both implementations."""
    a = rules.Conv(meta, rules.mup, kernel, rngs=nnx.Rngs(0), **kw)
    b = rules.Conv(meta, rules.mup, kernel, implementation="lax", rngs=nnx.Rngs(0), **kw)
    assert a.implementation == "im2col"
    np.testing.assert_array_equal(a.kernel[...], b.kernel[...])
    return a, b


@pytest.mark.parametrize(
    "dims, kernel, stride, padding",
    [(1, 5, 1, "SAME"), (1, 4, 2, "CIRCULAR"), (2, 3, 1, "SAME"), (2, 3, 2, "SAME"),
     (2, 1, 2, "SAME"), (2, 4, 2, "CIRCULAR"), (3, 3, 2, "SAME")],
)  # fmt: skip
def test_lax_matches_im2col_forward_and_gradients(dims, kernel, stride, padding):
    meta = rules.LayerMeta("hidden", 3 * kernel**dims, 5, base_fan_in=kernel**dims, base_fan_out=2)
    a, b = pair(meta, (kernel,) * dims, strides=stride, padding=padding)
    x = jax.random.normal(jax.random.key(1), (2, *(7,) * dims, 3))

    def loss(layer, x):
        return jnp.sum(jnp.sin(layer(x)))

    # compiled, as train.py runs them: eagerly each op of the im2col gradient compiles alone
    forward, grad = nnx.jit(lambda layer, x: layer(x)), nnx.jit(nnx.grad(loss, argnums=(0, 1)))
    np.testing.assert_allclose(forward(a, x), forward(b, x), rtol=1e-5, atol=1e-5)
    ga, gxa = grad(a, x)
    gb, gxb = grad(b, x)
    np.testing.assert_allclose(ga.kernel[...], gb.kernel[...], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gxa, gxb, rtol=1e-4, atol=1e-5)


def test_unknown_implementation_is_rejected():
    with pytest.raises(ValueError, match="im2col or lax"):
        rules.Conv(rules.LayerMeta("hidden", 9, 4), rules.sp, (3,), implementation="cudnn",
                   rngs=nnx.Rngs(0))  # fmt: skip
    with pytest.raises(ValueError, match="conv_implementation"):
        config = zoo.ModelConfig(input_shape=(8, 8, 3), num_classes=10, conv_implementation="fft")
        config.validate()


def test_zoo_models_pass_the_choice_to_every_conv():
    for name, depth in (("resnet", 14), ("cnn2d", 3)):
        config = zoo.ModelConfig(input_shape=(8, 8, 3), num_classes=10, width=4, depth=depth,
                                 conv_implementation="lax")  # fmt: skip
        model = nnx.eval_shape(lambda c=config, n=name: zoo.build(n, c, rules.mup, nnx.Rngs(0)))
        convs = [m for _, m in nnx.iter_graph(model) if isinstance(m, rules.Conv)]
        assert convs and all(c.implementation == "lax" for c in convs)


def test_scanned_resnet_outputs_match():
    # ResNet-14: n = 2, so each stage scans one block after its first; forward only (the
    # layer test above checks gradients; a ResNet's gradient compile costs ~30 s on XLA:CPU)
    config = zoo.ModelConfig(input_shape=(8, 8, 3), num_classes=10, width=4, depth=14,
                             base_width=2, normalization="batch")  # fmt: skip
    assert config.conv_implementation == "im2col" and config.scan_blocks
    x = jax.random.normal(jax.random.key(2), (4, 8, 8, 3))
    outputs = []
    for impl in ("im2col", "lax"):
        c = dataclasses.replace(config, conv_implementation=impl)
        graphdef, state = nnx.split(zoo.build("resnet", c, rules.mup, nnx.Rngs(0)))
        outputs.append(jax.jit(lambda s, g=graphdef: nnx.merge(g, s)(x))(state))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
