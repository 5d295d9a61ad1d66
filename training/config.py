"""The training configuration and its validation (one message per bad flag)."""

from __future__ import annotations

import dataclasses
import os

import data
import rules
import zoo
from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY

OPTIMIZERS = tuple(OPTIMIZER_FAMILY)


class ConfigError(ValueError):
    """A bad setting, reported as `--flag: message` with exit status 2."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: str = "mlp"
    rule: str = "mup"
    rules_module: str = ""  # module or .py file registering extra rules
    width: int = 256
    depth: int = 3
    base_width: int = 64
    base_depth: int = 1
    activation: str = "relu"
    bias: bool = True
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float | None = None  # None: 0.5 for adamw, 0 for the others
    steps: int = 2000
    batch_size: int = 128
    seed: int = 0
    dataset: str = ""  # "": the model's default dataset
    workdir: str = ""  # "": runs/<model>_<rule>_w<width>_d<depth>_s<seed>
    eval_every: int = 500
    log_every: int = 100

    @property
    def dataset_name(self) -> str:
        return self.dataset or zoo.DEFAULT_DATASETS[self.model]

    @property
    def workdir_path(self) -> str:
        default = f"runs/{self.model}_{self.rule}_w{self.width}_d{self.depth}_s{self.seed}"
        return self.workdir or default

    @property
    def weight_decay_value(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.5 if self.optimizer == "adamw" else 0.0

    @property
    def optimizer_family(self) -> str:
        return OPTIMIZER_FAMILY[self.optimizer]


def _choose(flag: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(flag, f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")


def validate(config: TrainConfig) -> TrainConfig:
    """Check every setting; raise ConfigError naming the first bad flag."""
    _choose("model", config.model, zoo.names())
    if config.rules_module:
        try:
            rules.import_rules(config.rules_module)
        except Exception as e:  # a user's file: any failure is theirs to fix
            raise ConfigError(
                "rules_module", f"cannot import {config.rules_module!r}: {e}"
            ) from None
    _choose("rule", config.rule, rules.names())
    _choose("optimizer", config.optimizer, OPTIMIZERS)
    _choose("activation", config.activation, sorted(rules.GAINS))
    if config.dataset:
        _choose("dataset", config.dataset, data.names())
    for flag in ("width", "depth", "steps", "batch_size", "eval_every", "log_every"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    if not 1 <= config.base_width <= config.width:
        raise ConfigError(
            "base_width", f"must be between 1 and --width={config.width}, got {config.base_width}"
        )
    if not 1 <= config.base_depth <= config.depth:
        raise ConfigError(
            "base_depth", f"must be between 1 and --depth={config.depth}, got {config.base_depth}"
        )
    if not config.lr > 0:  # also rejects NaN
        raise ConfigError("lr", f"must be > 0, got {config.lr}")
    if config.weight_decay_value < 0:
        raise ConfigError("weight_decay", f"must be >= 0, got {config.weight_decay}")
    return config


def prepare_workdir(path: str) -> None:
    """Create `path` and prove it is writable; ConfigError otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(
            "workdir", f"cannot write to {path!r} ({e.strerror or e}); pick another"
        ) from None
