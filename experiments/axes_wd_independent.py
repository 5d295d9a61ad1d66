"""`python -m scaling transfer_error` with the weight decay in the *independent* mode.

Usage: python experiments/axes_wd_independent.py SCALING transfer_error [its flags]
SCALING: constant | inverse_width (rules.axes.decay_width_transform, independent mode).

The probe's grid builds the rule's optimizer with a coupled decay (p -= lr (s.lr d + wd
s.wd p)). Here every member's optimizer is instead the rule's optimizer without decay,
followed by `rules.decay.independent_decay` (p -= wd s.wd p; no LR factor) with the
per-layer multipliers of `rules.decay.decay_scales(model, "independent", SCALING)`, and the
decay injected per member as the probe injects the coupled one, so a decay grid still
compiles once. Everything else (flags, JSON, PNG) is the probe's.

A check of this wiring: with SCALING=constant, a constant LR and no schedule, member
(lr, wd) here trains exactly as the probe's coupled member (lr, wd / lr) (same per-step
decay), `--check` prints both losses.
"""

from __future__ import annotations

import sys
import types

import optax
from absl import app

import rules
import scaling.grid as grid
from rules.decay import decay_scales, independent_decay


def install(scaling: str) -> None:
    """Point `scaling.grid` at the independent-decay optimizer with width scaling `scaling`."""
    grid.rules = types.SimpleNamespace(
        param_scales=lambda model: decay_scales(model, "independent", scaling),
        scaled_optimizer=rules.scaled_optimizer,
    )

    def optimizer(name: str, lr: float, scales, weight_decays):
        if weight_decays is None:
            raise ValueError("independent decay needs --tune=weight_decay or a --weight_decay")

        def factory(learning_rate, weight_decay):
            inner = rules.scaled_optimizer(name, learning_rate, scales, momentum=0.9)
            return optax.chain(inner, independent_decay(weight_decay, scales))

        return optax.inject_hyperparams(factory)(learning_rate=lr, weight_decay=weight_decays[0])

    grid._optimizer = optimizer


def check() -> None:
    """Independent (lr, wd) against coupled (lr, wd / lr), width 64, 30 steps, 2 members."""
    import numpy as np

    import scaling_data as data
    from scaling.setup import ProbeModel

    dataset = data.load("mnist1d")
    spec = ProbeModel(model="mlp", rule="mup", optimizer="adam", input_shape=(40,))
    lr, wds = 0.004, [0.002, 0.008]
    coupled = grid.train_grid(
        spec, 64, 3, [lr, lr], 1, dataset, 30, 128, "adam", weight_decays=[w / lr for w in wds]
    )
    install("constant")
    independent = grid.train_grid(spec, 64, 3, [lr, lr], 1, dataset, 30, 128, "adam",
                                  weight_decays=wds)  # fmt: skip
    print("coupled    ", coupled.train_loss[0])
    print("independent", independent.train_loss[0])
    print("max rel diff", float(np.max(np.abs(independent.train_loss / coupled.train_loss - 1))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        check()
        sys.exit(0)
    install(sys.argv.pop(1))
    from scaling import __main__ as cli

    app.run(cli.main, flags_parser=cli.parse)
