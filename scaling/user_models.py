"""Your own model under the probes: `python -m scaling update --model=my_models.py:build`.

`build(width, depth, seed, rule, optimizer)` returns an NNX model made the README's way
(flax's own layers, then `rules.parametrize(model, base, rule, optimizer=..., ...)`); the
probes then measure it like a zoo family (its parameter layers' outputs stand for the
pre-activations, scaling/capture.py). `optimizer` is the family the rule scales LRs for
("sgd" or "adam").
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from collections.abc import Callable

import rules


def is_user_model(name: str) -> bool:
    """`module:function` or `file.py:function` (zoo names have no colon)."""
    return ":" in name


def load_factory(name: str) -> Callable:
    """The function `name` points to; ValueError (one line) when it cannot be had."""
    where, _, function = name.rpartition(":")
    if not where or not function.isidentifier():
        raise ValueError(f"expected module:function or file.py:function, got {name!r}")
    try:
        if where.endswith(".py"):
            if not os.path.isfile(where):
                raise ValueError(f"no file {where!r}")
            spec = importlib.util.spec_from_file_location(f"user_model_{function}", where)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except BaseException as e:  # the user's code: any failure is theirs to fix
        from scaling_training.messages import user_error

        raise ValueError(f"cannot import {where!r}: {user_error(e)}") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"{where!r} has no function {function!r}")
    return factory


@dataclasses.dataclass(frozen=True)
class UserModel:
    """A user's model family under a rule, with the interface the probes use."""

    model: str  # "module:function", for the records
    rule: str
    factory: Callable = dataclasses.field(compare=False, repr=False)
    optimizer: str = "sgd"  # the optimizer family the rule scales for
    input_shape: tuple[int, ...] = (40,)
    num_classes: int = 10

    def build(self, width: int, depth: int, seed: int):
        from flax import nnx

        try:
            model = self.factory(
                width=width,
                depth=depth,
                seed=seed,
                rule=rules.get(self.rule),
                optimizer=self.optimizer,
            )
        except Exception as e:  # the user's code: name their file and line
            from scaling_training.messages import user_error

            raise ValueError(
                f"{self.model} failed for width {width}, depth {depth}: {user_error(e)}"
            ) from None
        if not isinstance(model, nnx.Module):
            raise ValueError(
                f"{self.model} returned {type(model).__name__}, not an nnx.Module; build the "
                "model, call rules.parametrize on it and return it"
            )
        return model
