"""The zoo's role metas, optional layers and residual multipliers (zoo/roles.py,
zoo/optional.py, rules/residual.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rules
import zoo
from zoo.optional import Identity
from zoo.roles import hidden_meta, input_meta, norm_meta, output_meta


def config(**kw):
    options = dict(input_shape=(12,), num_classes=5, width=32, base_width=8, activation="gelu")
    return zoo.ModelConfig(**options | kw)


def test_each_role_meta_is_config_meta_with_what_the_role_implies():
    c = config(depth=4, base_depth=2, optimizer="sgd")
    gain = rules.gain("gelu")
    assert input_meta(c, 12) == c.meta("input", 12, 32, scales_in=False, scales_out=True, gain=1.0)
    assert input_meta(c, 1, 64, block=3) == c.meta(
        "input", 1, 64, scales_in=False, scales_out=True, gain=1.0, block=3
    )
    assert hidden_meta(c, 32, 96) == c.meta(
        "hidden", 32, 96, scales_in=True, scales_out=True, gain=gain
    )
    assert hidden_meta(c, 32, 32, gain=1.0, branch_index=0) == c.meta(
        "hidden", 32, 32, scales_in=True, scales_out=True, gain=1.0, branch_index=0
    )
    assert output_meta(c, 32) == c.meta(
        "output", 32, 5, scales_in=True, scales_out=False, gain=gain
    )
    assert output_meta(c, 32, gain=1.0).gain == 1.0
    assert norm_meta(c, 32) == c.meta("norm", 1, 32, scales_in=False, scales_out=True, gain=1.0)
    # what the roles decide: which fans have a base (grow with width)
    assert (input_meta(c, 12).base_fan_in, input_meta(c, 12).base_fan_out) == (None, 8)
    assert (output_meta(c, 32).base_fan_in, output_meta(c, 32).base_fan_out) == (8, None)
    assert (hidden_meta(c, 32, 96).base_fan_in, hidden_meta(c, 32, 96).base_fan_out) == (8, 24)


OFF = [
    ("mlp", (12,), dict(depth=2)),
    ("cnn2d", (6, 6, 1), dict(depth=1, width=8)),  # no hidden convs: an empty stack
    ("resnet", (8, 8, 1), dict(depth=8, width=4, base_width=2)),  # n = 1: no scanned blocks
    ("lm", (6,), dict(depth=1, width=16, heads=2, positions="rotary")),
    ("vit", (8, 8, 1), dict(depth=1, width=16, heads=2, positions="rotary", pooling="mean")),
]


@pytest.mark.parametrize("name, shape, kw", OFF, ids=[case[0] for case in OFF])
def test_switched_off_layers_are_identities_with_no_state(name, shape, kw):
    """No norm, no dropout, no stacked blocks, no learned positions or class token: the
    identity in their place, and the model's state holds nothing but its weights."""
    c = config(input_shape=shape, normalization="none", dropout=0.0, num_classes=7, **kw)
    model = zoo.build(name, c, rules.completep, nnx.Rngs(0))
    identities = [m for _, m in nnx.iter_modules(model) if isinstance(m, Identity)]
    assert identities
    state = nnx.to_flat_state(nnx.state(model))
    assert all(isinstance(v, nnx.Param) for _, v in state)
    leaves = {str(path[-1]) for path, _ in state}
    assert leaves <= {"kernel", "bias", "table"}
    if name == "lm":
        x = jax.random.randint(jax.random.key(1), (2, 6), 0, 7)
    else:
        x = jax.random.normal(jax.random.key(1), (2, *shape))
    y = model(x)
    assert jnp.all(jnp.isfinite(y))
    assert np.array_equal(np.asarray(y), np.asarray(model(x)))  # no dropout draws


@pytest.mark.parametrize(
    "name, shape, kw, blocks",
    [
        ("resmlp", (12,), dict(depth=4, base_depth=1), "blocks"),
        ("lm", (6,), dict(depth=4, base_depth=1, heads=2, width=16), "trunk/blocks"),
        ("resnet", (8, 8, 1), dict(depth=26, base_depth=8, width=4, base_width=2), "stages"),
    ],
)
def test_zoo_blocks_hold_the_rules_residual_multiplier(name, shape, kw, blocks):
    """completep at 4x the base blocks: 1/4, the value `rules.residual_multiplier` gives,
    in every block, and one describe row per block module."""
    c = config(input_shape=shape, num_classes=7, **kw)
    # abstract: multipliers and describe are metadata (a concrete build compiles its inits)
    model = nnx.eval_shape(lambda: zoo.build(name, c, rules.completep, nnx.Rngs(0)))
    found = [
        (path, m.residual_multiplier)
        for path, m in nnx.iter_modules(model)
        if hasattr(m, "residual_multiplier")
    ]
    assert found and all("/".join(map(str, p)).startswith(blocks) for p, _ in found)
    for _, multiplier in found:
        assert np.all(np.asarray(multiplier) == rules.residual_multiplier(rules.completep, 4, 1))
        assert np.all(np.asarray(multiplier) == 0.25)
    rows = [line for line in rules.describe(model).splitlines() if "<branch output>" in line]
    assert len(rows) == len(found)
