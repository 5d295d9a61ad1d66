"""`train.py --transfer_from=PROXY`: tune small, train big. A target run's settings from a
tuned proxy, and the derivation of its lr and weight decay, one line per axis.

PROXY is a sweep's workdir (config.json, and sweep.json once it finished: the tuned lr is
its `best_lr`) or a JSON file of tuned values (config.json's keys; it needs lr, model,
optimizer, dataset, steps and batch_size).

The target takes the proxy's tuned lr and weight decay *and its base shape*: base_width and
base_depth (the rule's multipliers carry the lr across width and depth), base_steps and
base_batch_size (the proxy's own, else its steps and batch size), so that the run-axes
corrections (scaling_training/run_axes.py) derive the target's values. Every other setting
of the recipe the user did not give comes from the proxy too.

Refused (ConfigError, status 2, nothing written): a proxy that is missing, not a sweep,
unfinished or all diverged; a target of another model, dataset, optimizer family, rule or
weight-decay mode; --lr, --weight_decay, --lrs or a base shape given beside it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from rules.optim_names import OPTIMIZERS as OPTIMIZER_FAMILY
from scaling_training import run_axes
from scaling_training.config import PER_MODEL, TrainConfig
from scaling_training.errors import ConfigError

FLAG = "transfer_from"
# Recipe settings a target takes from its proxy unless given.
INHERITED = (
    "model", "rule", "rules_module", "width", "depth", "activation", "normalization",
    "dropout", "kernel_size", "padding", "bias", "optimizer", "momentum", "steps",
    "batch_size", "dataset", "data_dir", "schedule", "warmup_steps", "clip_norm", "dtype",
    "augment", "heads", "head_dim", "mlp_ratio", "positions", "tied", "pooling",
    "patch_size", "seq_len", "weight_decay_mode", "weight_decay_width", "beta2",
)  # fmt: skip
# Settings whose value must be the proxy's: another one makes its lr meaningless.
SAME = ("model", "dataset", "rule", "weight_decay_mode")
# Settings the transfer sets itself.
SET_BY_TRANSFER = ("lr", "weight_decay", "lrs", "base_steps", "base_batch_size")
NEEDED_IN_JSON = ("lr", "model", "optimizer", "dataset", "steps", "batch_size")
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_NUMBERS = {"lr", "weight_decay", "dropout", "momentum", "clip_norm", "beta2", "horizon_beta"}


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A tuned proxy: its settings (config.json's keys), its tuned lr, and where it was read."""

    settings: dict
    lr: float
    source: str  # e.g. "best lr of a sweep of 5" or "tuned values"
    edge: str = ""  # "smallest" / "largest" when the best lr is at the edge of its sweep


def load_proxy(path: str) -> Proxy:
    """The proxy at `path`; ConfigError saying what is wrong with it."""
    if not path or not os.path.exists(path):
        raise ConfigError(FLAG, f"no such file or folder {path!r}")
    if os.path.isdir(path):
        return _load_sweep(path)
    settings = _read_json(path)
    if not isinstance(settings, dict):
        raise ConfigError(FLAG, f"{path} must hold a JSON object of tuned values")
    missing = [key for key in NEEDED_IN_JSON if key not in settings]
    if missing:
        raise ConfigError(FLAG, f"{path} lacks {', '.join(missing)} (needed to transfer)")
    unknown = sorted(set(settings) - set(_FIELDS) - {"sweep_lrs"})
    if unknown:
        raise ConfigError(FLAG, f"{path} has unknown settings: {', '.join(unknown)}")
    _check_types(settings, path)
    return Proxy(settings=settings, lr=settings["lr"], source=f"tuned values in {path}")


def _load_sweep(path: str) -> Proxy:
    config_path, sweep_path = (os.path.join(path, n) for n in ("config.json", "sweep.json"))
    if not os.path.isfile(config_path):
        raise ConfigError(FLAG, f"{path} is not a run's workdir (no config.json)")
    settings = _read_json(config_path)
    if not isinstance(settings, dict) or not settings.get("sweep_lrs"):
        raise ConfigError(
            FLAG,
            f"{path} is a single run, not a sweep (--lrs): nothing was tuned there; pass a "
            "sweep's workdir or a JSON of tuned values",
        )
    if not os.path.isfile(sweep_path):
        raise ConfigError(FLAG, f"the sweep in {path} is unfinished (no sweep.json yet)")
    sweep = _read_json(sweep_path)
    best = sweep.get("best_lr") if isinstance(sweep, dict) else None
    if best is None:
        raise ConfigError(FLAG, f"every lr of the sweep in {path} diverged: nothing to transfer")
    lrs = sorted(sweep.get("lrs") or settings["sweep_lrs"])
    edge = "smallest" if best == lrs[0] else "largest" if best == lrs[-1] else ""
    _check_types(settings, config_path)
    source = f"best lr of its sweep of {len(lrs)} ({sweep_path})"
    return Proxy(settings=settings | {"lr": best}, lr=best, source=source, edge=edge)


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(FLAG, f"cannot read {path}: {e}") from None


def _check_types(settings: dict, path: str) -> None:
    for key, value in settings.items():
        if key not in _FIELDS or value is None:
            continue
        default = _FIELDS[key].default
        if key in _NUMBERS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif key in PER_MODEL and key != "normalization" or isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(FLAG, f"{path}: {key} = {value!r} is not a valid value")
    if not settings.get("lr", 0) > 0:
        raise ConfigError(FLAG, f"{path}: the tuned lr must be > 0, got {settings.get('lr')}")
    for key in ("steps", "batch_size", "base_steps", "base_batch_size"):
        if settings.get(key) is not None and settings[key] < (1 if key in NEEDED_IN_JSON else 0):
            raise ConfigError(FLAG, f"{path}: {key} = {settings[key]} is not a valid value")


def resolve(config: TrainConfig, given: set[str]) -> TrainConfig:
    """The target's settings: `config` (whose flags in `given` the user set) completed from
    the proxy of `config.transfer_from`. ConfigError for what cannot be transferred."""
    if not config.transfer_from:
        return config
    proxy = load_proxy(config.transfer_from)
    theirs = proxy.settings
    for flag in SET_BY_TRANSFER:
        if flag in given:
            raise ConfigError(
                flag, f"--transfer_from sets it from the proxy ({config.transfer_from}); drop one"
            )
    for flag in SAME:
        if flag in given and flag in theirs and getattr(config, flag) != theirs[flag]:
            raise ConfigError(
                flag,
                f"the proxy was tuned with {flag} {theirs[flag]!r}; its lr does not carry to "
                f"{getattr(config, flag)!r} (tune a proxy with that {flag})",
            )
    if "optimizer" in given and not _same_optimizer(config.optimizer, theirs["optimizer"]):
        raise ConfigError(
            "optimizer",
            f"the proxy was tuned with {theirs['optimizer']} ({_family(theirs['optimizer'])} "
            f"family); its lr does not carry to {config.optimizer} ({_family(config.optimizer)})",
        )
    changes = {k: theirs[k] for k in INHERITED if k not in given and theirs.get(k) is not None}
    for flag in ("base_width", "base_depth"):
        if theirs.get(flag) is None:
            continue
        if flag in given and getattr(config, flag) != theirs[flag]:
            raise ConfigError(
                flag,
                f"the proxy's lr is the one at its {flag} {theirs[flag]}; keep it (drop --{flag})",
            )
        changes[flag] = theirs[flag]
    changes |= {
        "lr": proxy.lr,
        "weight_decay": theirs.get("weight_decay"),
        "base_steps": theirs.get("base_steps") or theirs["steps"],
        "base_batch_size": theirs.get("base_batch_size") or theirs["batch_size"],
    }
    return dataclasses.replace(config, **changes)


def _family(name: str) -> str:
    return OPTIMIZER_FAMILY.get(name, "unknown")


def _same_optimizer(ours: str, theirs: str) -> bool:
    """adam and adamw are one update (the decay is carried separately); others must match."""
    return ours == theirs or {ours, theirs} == {"adam", "adamw"}


def describe(config: TrainConfig) -> list[str]:
    """How the run's lr, weight decay and beta2 follow from the proxy's (with
    --transfer_from) or the base run's (--base_steps, ...), one line per axis; [] for a
    plain run."""
    lines = run_axes.describe(config)
    if not config.transfer_from or not lines:
        return lines
    proxy = load_proxy(config.transfer_from)
    theirs = proxy.settings
    head = [f"transfer from {config.transfer_from}: lr {proxy.lr:g} ({proxy.source})"]
    if proxy.edge:
        head.append(
            f"  note: that is the {proxy.edge} lr of the proxy's sweep; its optimum may lie "
            "beyond the grid"
        )
    for axis, base in (("width", "base_width"), ("depth", "base_depth")):
        size, theirs_size = getattr(config, axis), theirs.get(axis, getattr(config, axis))
        text = f"  {axis} {theirs_size} -> {size}"
        if size == theirs_size:
            head.append(text + ": same")
        else:
            head.append(
                f"{text}: rule {config.rule}'s per-layer multipliers from --{base}="
                f"{getattr(config, base)}; the global lr carries over (x 1)"
            )
    return head + lines
