"""A user's model for the probes, written as flax code is (tests/test_scaling_user_models.py).

`build` is what `python -m scaling update --model=tests/user_mlp.py:build` calls.
"""

import jax
from flax import nnx

import rules


class UserMLP(nnx.Module):
    def __init__(self, width: int, depth: int, *, rngs: nnx.Rngs):
        self.first = nnx.Linear(40, width, use_bias=False, rngs=rngs)
        self.middle = nnx.List(
            [nnx.Linear(width, width, use_bias=False, rngs=rngs) for _ in range(depth - 1)]
        )
        self.last = nnx.Linear(width, 10, use_bias=False, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.first(x))
        for layer in self.middle:
            h = nnx.relu(layer(h))
        return self.last(h)


def build(width: int, depth: int, seed: int, rule: rules.Rule, optimizer: str) -> UserMLP:
    """The README recipe: the model, its base-width twin (abstract), rules.parametrize."""
    model = UserMLP(width, depth, rngs=nnx.Rngs(seed))
    base = nnx.eval_shape(lambda: UserMLP(64, depth, rngs=nnx.Rngs(0)))
    delta = nnx.eval_shape(lambda: UserMLP(128, depth, rngs=nnx.Rngs(0)))
    rules.parametrize(
        model,
        base,
        rule,
        init="rule",
        key=jax.random.key(seed),
        optimizer=optimizer,
        activation="relu",
        delta=delta if width == 64 else None,
    )
    return model
