"""The training configuration and its validation (one message per bad flag)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import rules
import scaling_data as data
import zoo
from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY
from scaling_training.errors import ConfigError
from scaling_training.models import PADDINGS
from scaling_training.schedules import SCHEDULES
from zoo.depths import check_depth

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
    # --- scale (issue 5): devices, checkpoints, sweeps, data, outputs ---
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
    # --- training features (issue 10) ---
    schedule: str = "constant"  # lr schedule on the global (peak) lr: SCHEDULES
    warmup_steps: int = 0  # linear warm-up to the peak lr over this many steps
    clip_norm: float = 0.0  # > 0: clip the gradients' global norm before the optimizer
    dtype: str = "float32"  # compute dtype of forward and backward passes
    augment: str = "auto"  # "auto": crop_flip for natural images (cifar), none otherwise
    # --- transformers (issue 12): lm, vit ---
    heads: int = 4
    head_dim: int = 0  # > 0: fixed head size (heads grow with width) instead of fixed heads
    mlp_ratio: int = 4
    positions: str = "learned"
    tied: bool = False
    pooling: str = "cls"
    patch_size: int = 0
    seq_len: int = 64  # text sets: tokens per training window

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


def validate(config: TrainConfig) -> TrainConfig:
    """Check every setting; raise ConfigError naming the first bad flag.

    Returns the config with per-model defaults filled in (what the run uses).
    """
    _choose("model", config.model, zoo.names())
    if config.rules_module:
        try:
            rules.import_rules(config.rules_module)
        except Exception as e:  # a user's file: any failure is theirs to fix
            raise ConfigError(
                "rules_module", f"cannot import {config.rules_module!r}: {e}"
            ) from None
    config = with_model_defaults(config)
    _choose("rule", config.rule, rules.names())
    _choose("optimizer", config.optimizer, OPTIMIZERS)
    _choose("activation", config.activation, sorted(rules.GAINS))
    _choose("normalization", config.normalization, zoo.NORMALIZATIONS)
    _choose("padding", config.padding, tuple(PADDINGS))
    if not 0 <= config.dropout < 1:  # also rejects NaN
        raise ConfigError("dropout", f"must be in [0, 1), got {config.dropout}")
    validate_transformer(config)
    if config.dataset:
        _choose("dataset", config.dataset, data.names())
    for flag in ("width", "depth", "kernel_size", "steps", "batch_size", "eval_every", "log_every"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    for flag in ("depth", "base_depth"):
        try:
            check_depth(config.model, getattr(config, flag))
        except ValueError as e:
            raise ConfigError(flag, str(e)) from None
    if not 1 <= config.base_width <= config.width:
        raise ConfigError(
            "base_width", f"must be between 1 and --width={config.width}, got {config.base_width}"
        )
    if not 1 <= config.base_depth <= config.depth:
        raise ConfigError(
            "base_depth", f"must be between 1 and --depth={config.depth}, got {config.base_depth}"
        )
    if not 0 < config.lr < math.inf:  # also rejects NaN
        raise ConfigError("lr", f"must be > 0 and finite, got {config.lr}")
    if not 0 <= config.weight_decay_value < math.inf:
        raise ConfigError("weight_decay", f"must be >= 0 and finite, got {config.weight_decay}")
    if not 0 <= config.momentum < 1:
        raise ConfigError("momentum", f"must be in [0, 1), got {config.momentum}")
    validate_run_length(config)
    validate_scale(config)
    validate_paths(config)
    if config.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(
            "tensorboard", "needs tensorboardX: pip install 'scaling-rules[tensorboard]'"
        )
    return validate_features(config)


SEED_LIMIT = 2**32  # seeds go to numpy's and JAX's generators as unsigned 32-bit words
STEP_LIMIT = 2**31 - 1  # step counters are int32 inside the jitted chunks
CHUNK_LIMIT = 10**6  # chunk boundaries (log, eval, checkpoint) a run may have


def validate_run_length(config: TrainConfig) -> None:
    """Seeds and step counts that the generators, counters and chunking can hold."""
    last_seed = config.seed + max(config.seeds, 1) - 1
    if config.seed < 0 or last_seed >= SEED_LIMIT:
        span = f" (with --seeds={config.seeds}, up to {last_seed})" if config.seeds > 1 else ""
        raise ConfigError("seed", f"must be in [0, {SEED_LIMIT}), got {config.seed}{span}")
    if config.steps > STEP_LIMIT:
        raise ConfigError("steps", f"must be <= {STEP_LIMIT}, got {config.steps}")
    chunks = sum(
        config.steps // every
        for every in (config.log_every, config.eval_every, config.checkpoint_every)
        if every > 0
    )
    if chunks > CHUNK_LIMIT:
        raise ConfigError(
            "steps",
            f"{config.steps} steps would end {chunks} chunks at --log_every, --eval_every and "
            f"--checkpoint_every boundaries (limit {CHUNK_LIMIT}); raise those or lower --steps",
        )


def validate_paths(config: TrainConfig) -> None:
    """--data_dir and --workdir, read but not touched: the first error before any write."""
    if config.data_dir:
        where = os.path.expanduser(config.data_dir)
        if os.path.exists(where) and not os.path.isdir(where):
            raise ConfigError("data_dir", f"{config.data_dir!r} is a file, not a folder")
        if os.path.isdir(where) and not os.access(where, os.R_OK | os.X_OK):
            raise ConfigError("data_dir", f"{config.data_dir!r} is not readable")
    workdir = config.workdir_path
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError("workdir", f"{workdir!r} is a file, not a folder; pick another")
    archive = os.path.join(workdir, "archive")
    if os.path.exists(archive) and not os.path.isdir(archive):
        raise ConfigError(
            "workdir", f"{archive!r} is a file, but earlier runs are archived there; move it"
        )


def validate_features(config: TrainConfig) -> TrainConfig:
    """Schedule, clipping, dtype and augmentation; "auto" augmentation resolved."""
    _choose("schedule", config.schedule, SCHEDULES)
    _choose("dtype", config.dtype, DTYPES)
    _choose("augment", config.augment, ("auto",) + data.AUGMENTATIONS)
    if not 0 <= config.warmup_steps <= config.steps:
        raise ConfigError(
            "warmup_steps", f"must be in [0, --steps={config.steps}], got {config.warmup_steps}"
        )
    if not 0 <= config.clip_norm < float("inf"):  # also rejects NaN
        raise ConfigError("clip_norm", f"must be >= 0 and finite (0: off), got {config.clip_norm}")
    if config.augment == "auto":
        config = dataclasses.replace(config, augment=data.default_augmentation(config.dataset_name))
    return config


def config_record(config: TrainConfig) -> dict:
    """config.json's content: every setting, with defaults resolved."""
    return dataclasses.asdict(config) | {
        "workdir": config.workdir_path,
        "dataset": config.dataset_name,
        "weight_decay": config.weight_decay_value,
    }


def validate_transformer(config: TrainConfig) -> None:
    """The flags of lm and vit: attention shape, positions, pooling, patches, text windows."""
    _choose("positions", config.positions, zoo.POSITIONS)
    _choose("pooling", config.pooling, zoo.POOLINGS)
    for flag in ("heads", "mlp_ratio", "seq_len"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    for flag in ("head_dim", "patch_size"):
        if getattr(config, flag) < 0:
            raise ConfigError(flag, f"must be >= 0 (0: automatic), got {getattr(config, flag)}")
    if config.seq_len > 4096:
        raise ConfigError("seq_len", f"must be <= 4096, got {config.seq_len}")
    if config.model not in ("lm", "vit"):
        return
    if config.head_dim:
        if config.width % config.head_dim or config.base_width % config.head_dim:
            raise ConfigError(
                "head_dim",
                f"--width={config.width} and --base_width={config.base_width} must be "
                f"multiples of --head_dim={config.head_dim}",
            )
        head_dim = config.head_dim
    else:
        if config.width % config.heads or config.base_width % config.heads:
            raise ConfigError(
                "heads",
                f"--width={config.width} and --base_width={config.base_width} must be "
                f"multiples of --heads={config.heads}",
            )
        head_dim = config.width // config.heads
    if config.positions == "rotary" and head_dim % 2:
        raise ConfigError("positions", f"rotary needs an even head size, got {head_dim}")
    dataset = config.dataset_name
    if (config.model == "lm") != data.is_text(dataset):
        wanted = "a text set (grammar_text)" if config.model == "lm" else "an image or 1D set"
        raise ConfigError("dataset", f"--model={config.model} needs {wanted}, got {dataset!r}")


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


def validate_processes(config: TrainConfig) -> None:
    """The multi-host flags, checked before joining (train.py calls it first)."""
    if config.num_processes < 1:
        raise ConfigError("num_processes", f"must be >= 1, got {config.num_processes}")
    if not 0 <= config.process_id < config.num_processes:
        raise ConfigError(
            "process_id",
            f"must be in [0, --num_processes={config.num_processes}), got {config.process_id}",
        )
    if not 1 <= config.connect_timeout <= 24 * 3600:
        raise ConfigError(
            "connect_timeout", f"must be 1 .. 86400 seconds, got {config.connect_timeout}"
        )
    if config.num_processes > 1 and not config.coordinator_address:
        raise ConfigError("coordinator_address", "multi-host runs need host:port of process 0")
    if config.coordinator_address:
        host, _, port = config.coordinator_address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                "coordinator_address",
                f"expected host:port with a port in 1..65535, got {config.coordinator_address!r}",
            )


def validate_mesh(spec: str, members: int = 0) -> None:
    """The grammar of --mesh and its members axis against the sweep's `members` runs (0: not
    a sweep), in scaling_training.sharding's words; device counts are checked there."""
    if not spec.strip():
        return
    from scaling_training.sharding import parse_mesh

    axes = parse_mesh(spec, 0)  # the grammar, in the words train() would use later
    if "members" in axes and not members:
        raise ConfigError("mesh", "the members axis is for sweeps (--lrs); use data or model")
    if members and members % axes.get("members", 1):
        raise ConfigError(
            "mesh",
            f"the sweep's {members} runs (lrs x seeds) do not divide over "
            f"members:{axes['members']}; pick a divisor of {members}",
        )
    if "data" not in axes and "members" not in axes:  # a sweep may put every device on members
        raise ConfigError("mesh", f"needs a data axis (e.g. data:1,model:2), got {spec!r}")


def validate_scale(config: TrainConfig) -> None:
    """The flags of sharding, checkpoints, sweeps and multi-host runs."""
    for flag in ("keep_checkpoints", "seeds"):
        if getattr(config, flag) < 1:
            raise ConfigError(flag, f"must be >= 1, got {getattr(config, flag)}")
    if config.checkpoint_every < 0:
        raise ConfigError("checkpoint_every", f"must be >= 0, got {config.checkpoint_every}")
    validate_processes(config)
    validate_mesh(config.mesh, len(sweep_lrs(config)) * config.seeds)
    if sweep_lrs(config):
        if config.fsdp:
            raise ConfigError("fsdp", "sweeps (--lrs) copy each run's parameters; drop --fsdp")
    elif config.seeds != 1:
        raise ConfigError("seeds", "only sweeps use --seeds; add --lrs=a,b,c or use --seed")
