"""BatchNorm train/eval behaviour, in the models and through the pure training steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import rules
import zoo
from scaling_training.engine import make_evaluate, make_train_chunk, split_model
from scaling_training.members import stack


def build(normalization="batch"):
    config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=8, depth=2,
                             base_width=4, normalization=normalization)  # fmt: skip
    return zoo.build("cnn1d", config, rules.mup, nnx.Rngs(0))


def running_mean(model):
    return np.asarray(model.input.norm.mean[...])


def test_train_mode_uses_batch_statistics_and_updates_running_ones():
    model = build()
    x = jax.random.normal(jax.random.key(0), (16, 40)) * 3 + 1
    model.train()
    before = running_mean(model)
    alone, together = model(x[:2]), model(x)[:2]
    assert not np.allclose(alone, together)  # each example sees the batch's statistics
    assert not np.allclose(running_mean(model), before)


def test_eval_mode_uses_running_statistics_and_keeps_them():
    model = build()
    x = jax.random.normal(jax.random.key(0), (16, 40)) * 3 + 1
    model.eval()
    before = running_mean(model)
    np.testing.assert_allclose(model(x[:2]), model(x)[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(running_mean(model), before)


def test_norm_parameters_carry_rule_metadata():
    model = build("layer")
    rows = {r["path"]: r for r in rules.layer_rows(model)}
    assert rows["input/norm/scale"]["role"] == "norm"
    assert rows["input/norm/bias"]["role"] == "bias"
    assert model.input.norm.scale.meta.fan_out == 8
    multipliers = rules.lr_multipliers(model)
    assert multipliers["input"]["norm"]["scale"] == rules.mup(model.input.norm.scale.meta).lr


def test_steps_train_with_batch_statistics_and_evaluate_with_running_ones():
    model = build()
    graphdef, params, rest = split_model(model)
    optimizer = optax.adam(1e-3)
    train_chunk = make_train_chunk(graphdef, optimizer)
    x = jax.random.normal(jax.random.key(0), (64, 40)) * 3 + 1
    y = jnp.arange(64) % 10
    x_batches, y_batches = x.reshape(4, 16, 40), y.reshape(4, 16)
    params, new_rest, _, losses, _ = train_chunk(params, rest, optimizer.init(params), x_batches,
                                                 y_batches)  # fmt: skip
    old_mean = rest["input"]["norm"]["mean"]
    assert not np.allclose(new_rest["input"]["norm"]["mean"], old_mean)  # stats were updated
    # Evaluation uses running statistics: the result does not depend on the batch size.
    full = make_evaluate(graphdef, batch_size=64)(params, new_rest, x, y)
    small = make_evaluate(graphdef, batch_size=3)(params, new_rest, x, y)
    np.testing.assert_allclose(full, small, rtol=1e-5)


def test_stacked_members_evaluate_as_each_alone_in_smaller_batches(monkeypatch):
    """With M members, each call holds batch_size // M examples per member (memory bounded
    whatever the sweep's size); the results equal each member's own evaluation."""
    from scaling_training import engine

    batch_shapes, make_batch_sums = set(), engine.make_batch_sums

    def recording(graphdef, compute_dtype=None):
        batch_sums = make_batch_sums(graphdef, compute_dtype)

        def sums(params, rest, x, y):
            batch_shapes.add(x.shape[0])  # traced once per batch shape
            return batch_sums(params, rest, x, y)

        return sums

    monkeypatch.setattr(engine, "make_batch_sums", recording)
    models = [zoo.build("cnn1d", zoo.ModelConfig(input_shape=(40,), num_classes=10, width=8,
              depth=2, base_width=4, normalization="batch"), rules.mup, nnx.Rngs(seed))
              for seed in range(3)]  # fmt: skip
    splits = [split_model(m) for m in models]
    graphdef = splits[0][0]
    stacked = [stack([split[i] for split in splits]) for i in (1, 2)]  # params, rest
    x = jax.random.normal(jax.random.key(1), (20, 40))
    y = jnp.arange(20) % 10
    evaluate = make_evaluate(graphdef, batch_size=6, member_axes=1)
    loss, accuracy = evaluate(*stacked, x, y)
    assert batch_shapes == {2}  # 6 examples in all per call over 3 members
    monkeypatch.undo()
    for (_, params, rest), member_loss, member_accuracy in zip(splits, loss, accuracy):
        alone = make_evaluate(graphdef, batch_size=64)(params, rest, x, y)
        np.testing.assert_allclose((member_loss, member_accuracy), alone, rtol=1e-5)
