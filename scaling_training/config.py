"""The training configuration: its settings, per-model defaults and the record saved with a run
(validation: scaling_training/validation.py)."""

from __future__ import annotations

import dataclasses

import zoo
from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY
from scaling_training.errors import ConfigError

OPTIMIZERS = tuple(OPTIMIZER_FAMILY)
DTYPES = ("float32", "bfloat16")  # compute dtype; params and optimizer state stay float32

# Settings left None in TrainConfig come from here: the model's entry, else "*".
# Default `base_width` / `base_depth` are capped at --width / --depth (a smaller model is its
# own base shape).
MODEL_DEFAULTS: dict[str, dict] = {
    "*": dict(
        width=256,
        depth=3,
        base_width=64,
        base_depth=1,
        lr=3e-3,
        steps=2000,
        normalization="none",
        kernel_size=3,
        batch_size=128,
    ),
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
PER_MODEL = tuple(MODEL_DEFAULTS["*"])


def model_default(model: str, field: str):
    return MODEL_DEFAULTS.get(model, {}).get(field, MODEL_DEFAULTS["*"][field])


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: str = "mlp"
    rule: str = "mup"
    rules_module: str = ""  # module or .py file registering extra rules
    width: int | None = None  # None (here and below): the model's default, MODEL_DEFAULTS
    depth: int | None = None
    base_width: int | None = None
    base_depth: int | None = None
    activation: str = "relu"
    normalization: str | None = None
    dropout: float = 0.0
    kernel_size: int | None = None
    padding: str = "zero"
    bias: bool = True
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
    # --- transformers: lm, vit ---
    heads: int = 4
    head_dim: int = 0  # > 0: fixed head size (heads grow with width) instead of fixed heads
    mlp_ratio: int = 4
    positions: str = "learned"
    tied: bool = False
    pooling: str = "cls"
    patch_size: int = 0
    seq_len: int = 64  # text sets: tokens per training window
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


def with_model_defaults(config: TrainConfig) -> TrainConfig:
    """`config` with every None setting of PER_MODEL replaced by the model's default."""
    filled = {
        field: model_default(config.model, field)
        for field in PER_MODEL
        if getattr(config, field) is None
    }
    config = dataclasses.replace(config, **filled)
    # A default base shape larger than the model would be invalid: use the model's own.
    capped = {
        base: min(getattr(config, base), getattr(config, size))
        for base, size in (("base_width", "width"), ("base_depth", "depth"))
        if base in filled and isinstance(getattr(config, size), int)
    }
    return dataclasses.replace(config, **capped)


def config_record(config: TrainConfig) -> dict:
    """config.json's content: every setting, with defaults resolved."""
    return dataclasses.asdict(config) | {
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
