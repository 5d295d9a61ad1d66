"""Scales live with the parameters: through jit, device placement and a checkpoint."""

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

import rules
import zoo


def build(seed=0):
    config = zoo.ModelConfig(input_shape=(6,), num_classes=3, width=32, base_width=8, depth=2)
    return zoo.build("mlp", config, rules.mup, nnx.Rngs(seed))


def test_metadata_survives_jit_and_device_put():
    model = build()
    before = rules.param_scales(model)
    graphdef, state = nnx.split(model)

    @jax.jit
    def roundtrip(state):
        return nnx.state(nnx.merge(graphdef, state))

    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    state = jax.device_put(roundtrip(state), sharding)
    assert rules.param_scales(nnx.merge(graphdef, state)) == before


def test_metadata_survives_a_checkpoint_round_trip(tmp_path):
    model = build(seed=1)
    before_scales, before_rows = rules.param_scales(model), rules.layer_rows(model)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(model))
    checkpointer.wait_until_finished()

    abstract = nnx.eval_shape(lambda: build(seed=2))
    graphdef, abstract_state = nnx.split(abstract)
    restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "ckpt", abstract_state))
    assert rules.param_scales(restored) == before_scales
    assert rules.layer_rows(restored) == before_rows
    for a, b in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(restored))):
        np.testing.assert_array_equal(a, b)
