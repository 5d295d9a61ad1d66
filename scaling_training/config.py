"""The training configuration: its settings, per-model defaults and the record saved with a run
(validation: scaling_training/validation.py).

A run's settings are `TrainConfig`: the model section `config.model` (a `zoo.ModelConfig`,
whose fields are the model flags: `--model` is its `name`, `--bias` its `use_bias`) beside
the optimizer, data and run settings. train.py's flags are `FLAG_DEFAULTS`, flat, as
config.json records them; `TrainConfig.from_flags` builds the sections from them.
"""

from __future__ import annotations

import dataclasses

import zoo
from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY
from scaling_training.errors import ConfigError

OPTIMIZERS = tuple(OPTIMIZER_FAMILY)
DTYPES = ("float32", "bfloat16")  # compute dtype; params and optimizer state stay float32

# Flags left None (PER_MODEL) come from here: the model's entry, else "*", else the
# zoo.ModelConfig field's own default. Default `base_width` / `base_depth` are capped at
# --width / --depth (a smaller model is its own base shape).
MODEL_DEFAULTS: dict[str, dict] = {
    "*": dict(base_width=64, base_depth=1, lr=3e-3, steps=2000, batch_size=128),
    "resmlp": dict(depth=4, base_depth=4),
    "cnn1d": dict(width=64, depth=4, base_width=16, base_depth=4, kernel_size=5),
    "cnn2d": dict(width=64, depth=4, base_width=16, base_depth=4),
    "resnet": dict(
        width=16,
        depth=20,
        base_width=16,
        base_depth=20,
        normalization="batch",
        lr=1e-3,  # 3e-3 spiked mid-run (test acc 0.92 at step 500); 1e-3: 0.994
        steps=1000,
    ),
    # transformers: pre-LN needs a norm; sizes chosen to train in < 3 min on 2 CPU cores
    "lm": dict(
        width=128,
        depth=2,
        base_width=64,
        base_depth=2,
        normalization="layer",
        steps=600,  # test loss 0.80 nats at step 500 (unigram baseline 3.0)
        batch_size=32,  # windows of --seq_len=64 bytes: 2048 tokens a step
    ),
    # digits test accuracy 0.953 at step 500, 0.983 at step 1000 (constant LR)
    "vit": dict(width=128, depth=2, base_width=64, base_depth=2, normalization="layer", steps=1000),
}
# Flags whose default depends on the model (None in FLAG_DEFAULTS).
PER_MODEL = ("width", "depth", "base_width", "base_depth", "normalization", "kernel_size")
PER_MODEL += ("lr", "steps", "batch_size")
# The model flags: flag -> field of the model section, zoo.ModelConfig. Every field is a flag
# of its own name, but these two renamed and those the build fills in (from the dataset, the
# optimizer) or that only change how the model is computed.
RENAMED = {"name": "model", "use_bias": "bias"}
NOT_FLAGS = ("input_shape", "num_classes", "optimizer", "conv_implementation", "scan_blocks")
MODEL_FLAGS: dict[str, str] = {
    RENAMED.get(f.name, f.name): f.name
    for f in dataclasses.fields(zoo.ModelConfig)
    if f.name not in NOT_FLAGS
}
_MODEL_FIELDS = {f.name: f.default for f in dataclasses.fields(zoo.ModelConfig)}


def model_default(model: str, field: str):
    """The default of PER_MODEL flag `field` for `model`."""
    for defaults in (MODEL_DEFAULTS.get(model, {}), MODEL_DEFAULTS["*"]):
        if field in defaults:
            return defaults[field]
    return _MODEL_FIELDS[field]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: zoo.ModelConfig = zoo.ModelConfig()  # the model section: its flags are MODEL_FLAGS
    rule: str = "mup"
    rules_module: str = ""  # module or .py file registering extra rules
    optimizer: str = "adamw"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None  # None: 0.5 for adamw, 0 for the others
    steps: int | None = None
    batch_size: int | None = None  # None: the model's default (MODEL_DEFAULTS)
    seed: int = 0
    dataset: str = ""  # "": the model's default dataset
    workdir: str = ""  # "": runs/<model>_<rule>_w<width>_d<depth>_s<seed>
    eval_every: int = 500
    log_every: int = 100
    # --- scale: devices, checkpoints, sweeps, data, outputs ---
    mesh: str = ""  # "": every device on the data axis
    fsdp: bool = False
    checkpoint_every: int = 1000  # 0: no checkpoints
    keep_checkpoints: int = 3
    lrs: str = ""  # "a,b,c": a vmapped sweep over these learning rates
    seeds: int = 1  # sweeps: seeds --seed .. --seed + seeds - 1
    data_dir: str = ""  # tensorflow-datasets data_dir for mnist, cifar10, ...
    tensorboard: bool = False
    plots: bool = True
    coordinator_address: str = ""  # multi-host: host:port of process 0
    num_processes: int = 1
    process_id: int = 0
    connect_timeout: int = 120  # multi-host: seconds to wait for every process to join
    # --- training features: schedule, clipping, dtype, augmentation ---
    schedule: str = "constant"  # lr schedule on the global (peak) lr: SCHEDULES
    warmup_steps: int = 0  # linear warm-up to the peak lr over this many steps
    clip_norm: float = 0.0  # > 0: clip the gradients' global norm before the optimizer
    dtype: str = "float32"  # compute dtype of forward and backward passes
    augment: str = "auto"  # "auto": crop_flip for natural images (cifar), none otherwise
    seq_len: int = 64  # text sets (lm): tokens per training window
    # --- run axes: length, batch, weight decay; help and checks: run_axes.py ---
    base_steps: int = 0  # 0: --steps (the length the LR was tuned at)
    base_batch_size: int = 0  # 0: --batch_size
    horizon_beta: float = 0.0  # lr x (steps / base_steps)^-beta
    batch_lr_scaling: str = "none"  # lr x (batch / base)^p: none, sqrt, linear, family
    batch_beta2: bool = False  # beta2 -> beta2^(batch / base) (fixed half-life in examples)
    decay_timescale: bool = False  # wd keeps lr x wd x steps (coupled) fixed
    weight_decay_mode: str = "coupled"  # coupled: per step lr x wd; independent: wd
    weight_decay_width: str = ""  # "": the mode's own (same decay per step at every width)
    beta2: float = 0.999  # Adam's beta2 (adam, adamw)
    transfer_from: str = ""  # a proxy sweep's workdir or a JSON of tuned values

    @classmethod
    def from_flags(cls, **values) -> TrainConfig:
        """The run of train.py's flag `values` (FLAG_DEFAULTS' names; absent ones at their
        defaults, None ones of PER_MODEL at the model's, MODEL_DEFAULTS). Checks nothing:
        scaling_training.validation.validate does."""
        unknown = sorted(set(values) - set(FLAG_DEFAULTS))
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        values = FLAG_DEFAULTS | values
        filled = {
            flag: model_default(values["model"], flag) for flag in PER_MODEL if values[flag] is None
        }
        values |= filled
        # A default base shape larger than the model would be invalid: use the model's own.
        for base, size in (("base_width", "width"), ("base_depth", "depth")):
            if base in filled and isinstance(values[size], int):
                values[base] = min(values[base], values[size])
        model = {field: values.pop(flag) for flag, field in MODEL_FLAGS.items()}
        return cls(model=zoo.ModelConfig(**model), **values)

    def with_flags(self, **changes) -> TrainConfig:
        """This run with some flags changed (model flags too: `with_flags(bias=False)`)."""
        return TrainConfig.from_flags(**(self.flags() | changes))

    def flags(self) -> dict:
        """Every flag's value (FLAG_DEFAULTS' names and order)."""
        return {name: self.flag(name) for name in FLAG_DEFAULTS}

    def flag(self, name: str):
        """The value of flag `name` (`config.flag("width")` is `config.model.width`)."""
        if name in MODEL_FLAGS:
            return getattr(self.model, MODEL_FLAGS[name])
        return getattr(self, name)

    def model_for(self, input_shape: tuple[int, ...], num_classes: int) -> zoo.ModelConfig:
        """The model section completed for a dataset (its input shape and classes) and the
        optimizer family the rule scales for: what zoo.build takes."""
        return dataclasses.replace(
            self.model,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            optimizer=self.optimizer_family,
        )

    @property
    def dataset_name(self) -> str:
        return self.dataset or zoo.DEFAULT_DATASETS[self.model.name]

    @property
    def workdir_path(self) -> str:
        m = self.model
        return self.workdir or f"runs/{m.name}_{self.rule}_w{m.width}_d{m.depth}_s{self.seed}"

    @property
    def weight_decay_value(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.5 if self.optimizer == "adamw" else 0.0

    @property
    def optimizer_family(self) -> str:
        return OPTIMIZER_FAMILY[self.optimizer]


# train.py's flags and their defaults (None: PER_MODEL, the model's), config.json's keys.
FLAG_DEFAULTS: dict = {
    flag: None if flag in PER_MODEL else _MODEL_FIELDS[field] for flag, field in MODEL_FLAGS.items()
} | {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "model"}


def config_record(config: TrainConfig) -> dict:
    """config.json's content: every setting, with defaults resolved."""
    return config.flags() | {
        "workdir": config.workdir_path,
        "dataset": config.dataset_name,
        "weight_decay": config.weight_decay_value,
    }


def sweep_lrs(config: TrainConfig) -> list[float]:
    """The learning rates of `--lrs` (empty: not a sweep); ConfigError when malformed."""
    if not config.lrs.strip():
        return []
    try:
        lrs = [float(part) for part in config.lrs.split(",")]
    except ValueError:
        raise ConfigError(
            "lrs", f"expected numbers like 1e-3,3e-3,1e-2, got {config.lrs!r}"
        ) from None
    for lr in lrs:
        if not lr > 0 or lr == float("inf"):
            raise ConfigError("lrs", f"every learning rate must be > 0 and finite, got {lr}")
    if len(set(lrs)) != len(lrs):
        raise ConfigError("lrs", f"learning rates repeat in {config.lrs!r}")
    return lrs
