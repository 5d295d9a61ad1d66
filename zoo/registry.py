"""Models by name: `build(name, config, rule, rngs)`."""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flax import nnx

    from rules import Rule
    from zoo.config import ModelConfig

# name -> "module:Class"; imported on use so that listing names stays cheap.
MODELS: dict[str, str] = {
    "mlp": "zoo.mlp:MLP",
    "resmlp": "zoo.resmlp:ResMLP",
    "cnn1d": "zoo.cnn:CNN1D",
    "cnn2d": "zoo.cnn:CNN2D",
    "resnet": "zoo.resnet:ResNet",
    "lm": "zoo.lm:LM",
    "vit": "zoo.vit:ViT",
}

# Offline dataset each model trains on unless --dataset says otherwise.
DEFAULT_DATASETS: dict[str, str] = {
    "mlp": "mnist1d",
    "resmlp": "mnist1d",
    "cnn1d": "mnist1d",
    "cnn2d": "digits",
    "resnet": "digits",
    "lm": "grammar_text",
    "vit": "digits",
}


def names() -> list[str]:
    return sorted(MODELS)


def build(name: str, config: ModelConfig, rule: Rule, rngs: nnx.Rngs) -> nnx.Module:
    """Build model `name` from `config` (its `name` set to `name`, then validated);
    ValueError listing the choices for an unknown name, or naming a bad setting."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    config = dataclasses.replace(config, name=name).validate()
    module_name, class_name = MODELS[name].split(":")
    model_class = getattr(importlib.import_module(module_name), class_name)
    return model_class(config, rule, rngs=rngs)
