"""rules.Conv: the same numbers as lax's convolution, the rule's scales, its metadata."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules


def lax_conv(x, kernel, stride):
    spatial = "DHW"[-(x.ndim - 2) :]
    numbers = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    strides = (stride,) * (x.ndim - 2)
    return jax.lax.conv_general_dilated(
        x, kernel, strides, "SAME", dimension_numbers=numbers, precision="highest"
    )


@pytest.mark.parametrize(
    "dims, kernel, stride", [(1, 5, 1), (1, 4, 1), (2, 3, 1), (2, 3, 2), (2, 1, 2), (2, 4, 2)]
)
def test_matches_lax_convolution_with_zero_padding(dims, kernel, stride):
    meta = rules.LayerMeta("hidden", 3 * kernel**dims, 5)
    conv = rules.Conv(meta, rules.sp, (kernel,) * dims, strides=stride, rngs=nnx.Rngs(0))
    conv.bias[...] = jnp.arange(5.0)
    x = jax.random.normal(jax.random.key(1), (2, *(9,) * dims, 3))
    expected = lax_conv(x, conv.kernel[...], stride) + jnp.arange(5.0)
    np.testing.assert_allclose(conv(x), expected, atol=1e-5)


def test_circular_padding_wraps_around():
    meta = rules.LayerMeta("hidden", 3, 1)
    conv = rules.Conv(meta, rules.sp, (3,), padding="CIRCULAR", use_bias=False, rngs=nnx.Rngs(0))
    conv.kernel[...] = jnp.ones((3, 1, 1))  # sum of a point and its two neighbours
    x = jnp.arange(6.0).reshape(1, 6, 1)
    out = np.asarray(conv(x))[0, :, 0]
    np.testing.assert_allclose(
        out, [5 + 0 + 1, 0 + 1 + 2, 1 + 2 + 3, 2 + 3 + 4, 3 + 4 + 5, 4 + 5 + 0]
    )


def test_kernel_std_and_metadata_follow_the_rule():
    meta = rules.LayerMeta("hidden", 64 * 9, 64, base_fan_in=16 * 9, base_fan_out=16, gain=2.0)
    conv = rules.Conv(meta, rules.mup, (3, 3), rngs=nnx.Rngs(0))
    assert conv.kernel.shape == (3, 3, 64, 64)
    assert float(conv.kernel[...].std()) == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.03)
    assert conv.kernel.meta == meta and conv.kernel.scales == rules.mup(meta)
    assert conv.bias.meta.role == "bias"
    multipliers = rules.lr_multipliers(conv)
    assert multipliers["kernel"] == pytest.approx(rules.mup(meta).lr)


def test_rejects_fan_in_that_is_not_channels_times_kernel():
    with pytest.raises(ValueError, match="kernel volume"):
        rules.Conv(rules.LayerMeta("hidden", 10, 4), rules.sp, (3,), rngs=nnx.Rngs(0))
