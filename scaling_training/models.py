"""A described model, built and rule-checked: `build(zoo.ModelConfig, rule, seed)`.

Used by train.py's runs (`recipe.build_model`, from the run's `config.model` section) and by
the probes (`scaling.setup.ProbeModel.build`, at each width and depth they vary).
"""

from __future__ import annotations

import rules
import zoo


def build(model: zoo.ModelConfig, rule_name: str, seed: int):
    """The model `model` describes (input shape, classes and optimizer family filled in),
    seeded from `seed`; rules.RuleError when the rule does not fit it."""
    from flax import nnx

    rule = rules.get(rule_name)
    model.validate()  # a bad setting is not the rule's failure
    try:
        built = zoo.build(model.name, model, rule, nnx.Rngs(seed))
    except Exception as e:
        if all(getattr(t, "__module__", "").startswith("rules.") for t in rule.transforms):
            raise  # a built-in rule: our bug, not the user's
        from scaling_training.messages import user_error

        raise rules.RuleError(
            f"rule {rule.name!r} failed while the model was built: {user_error(e)}"
        ) from None
    rules.check(rule, rules.param_metas(built))
    return built
