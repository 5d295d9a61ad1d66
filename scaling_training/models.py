"""Which model a run trains: its settings -> `zoo.ModelConfig` -> a built, rule-checked model.

The one mapping from run settings to the zoo's config, used by train.py's runs
(`ModelChoice.from_settings(config)`) and by the probes (`scaling.setup.ProbeModel`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import rules
import zoo

PADDINGS = {"zero": "SAME", "circular": "CIRCULAR"}  # flag value -> rules.Conv padding
# Settings passed to zoo.ModelConfig under their own name when a settings object has them.
OPTION_FIELDS = ("normalization", "dropout", "kernel_size", "padding")
# Transformer settings (lm, vit), passed when the settings object has them (other models
# ignore them).
TRANSFORMER_FIELDS = (
    "heads",
    "head_dim",
    "mlp_ratio",
    "positions",
    "tied",
    "pooling",
    "patch_size",
)


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """A zoo model family under a rule at one shape.

    `base_width` / `base_depth` None mean "the model's own" (no scaling), and are capped at
    the width / depth (a smaller model is its own base). `options` holds further
    `zoo.ModelConfig` fields as (name, value) pairs.
    """

    model: str = "mlp"
    rule: str = "mup"
    width: int = 256
    depth: int = 3
    base_width: int | None = None
    base_depth: int | None = None
    activation: str = "relu"
    use_bias: bool = True
    optimizer_family: str = "adam"  # the optimizer family the rule scales LRs for
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> ModelChoice:
        """From a run's settings (scaling_training.config.TrainConfig, with defaults filled in)."""
        options = {name: getattr(settings, name) for name in OPTION_FIELDS}
        options |= {n: getattr(settings, n) for n in TRANSFORMER_FIELDS if hasattr(settings, n)}
        options["padding"] = PADDINGS.get(options["padding"], options["padding"])
        return cls(
            model=settings.model,
            rule=settings.rule,
            width=settings.width,
            depth=settings.depth,
            base_width=settings.base_width,
            base_depth=settings.base_depth,
            activation=settings.activation,
            use_bias=settings.bias,
            optimizer_family=settings.optimizer_family,
            options=tuple(options.items()),
        )

    def config(self, input_shape: tuple[int, ...], num_classes: int) -> zoo.ModelConfig:
        return zoo.ModelConfig(
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            width=self.width,
            depth=self.depth,
            base_width=min(self.base_width or self.width, self.width),
            base_depth=min(self.base_depth or self.depth, self.depth),
            activation=self.activation,
            use_bias=self.use_bias,
            optimizer=self.optimizer_family,
            **dict(self.options),
        )

    def build(self, input_shape: tuple[int, ...], num_classes: int, seed: int):
        """The model, seeded from `seed`; rules.RuleError when the rule does not fit it."""
        from flax import nnx

        rule = rules.get(self.rule)
        config = self.config(input_shape, num_classes)
        try:
            model = zoo.build(self.model, config, rule, nnx.Rngs(seed))
        except Exception as e:
            if all(getattr(t, "__module__", "").startswith("rules.") for t in rule.transforms):
                raise  # a built-in rule: our bug, not the user's
            from scaling_training.messages import user_error

            raise rules.RuleError(
                f"rule {rule.name!r} failed while the model was built: {user_error(e)}"
            ) from None
        rules.check(rule, rules.param_metas(model))
        return model
