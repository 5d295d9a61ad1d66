"""Train a zoo model under a scaling rule: `python train.py --model=mlp --rule=mup`.

Exit status (every failure is one line on stderr):
  0  done
  2  bad flags or inputs (a flag, path, dataset, rule, size that cannot fit, or a workdir in
     use by another run); nothing in the workdir was changed
  3  the loss diverged (metrics up to then are in the workdir)
  4  an output could not be written (disk full, I/O error); what was written before, and
     every checkpoint saved, is intact: free space and rerun to resume
  130, 143  interrupted by Ctrl-C (SIGINT) or SIGTERM: the workdir is consistent, and a rerun
     resumes from the newest checkpoint
"""

from __future__ import annotations

from absl import app, flags, logging

import rules
import scaling_data as data
import zoo
from scaling_training import errors
from scaling_training.config import FLAG_DEFAULTS, OPTIMIZERS, PER_MODEL, TrainConfig, model_default
from scaling_training.errors import EXIT_DIVERGED, EXIT_WRITE_FAILED, ConfigError, fail
from scaling_training.run_axes import HELP as RUN_AXES_HELP

HELP = {
    "model": f"model family: {', '.join(zoo.names())}",
    "rule": f"scaling rule: {', '.join(rules.names())} (or one from --rules_module)",
    "rules_module": "module name or .py file whose rules.register(...) calls add rules",
    "width": "hidden width: units (mlp, resmlp), channels (cnn1d, cnn2d), channels of the "
    "first stage (resnet; stages have 1x, 2x, 4x)",
    "depth": "hidden layers (mlp), conv layers (cnn1d, cnn2d), residual blocks (resmlp), "
    "layers 6n+2 (resnet: 20, 32, 44, 56, 110, ...)",
    "base_width": "width at which the rule equals its base rule (where you tuned; capped at "
    "--width)",
    "base_depth": "depth at which depth rules equal their base rule (capped at --depth)",
    "activation": f"activation: {', '.join(sorted(rules.GAINS))}",
    "normalization": f"normalization: {', '.join(zoo.NORMALIZATIONS)}",
    "dropout": "dropout rate after activations (inside the residual branches of resmlp/resnet)",
    "kernel_size": "convolution kernel size along each axis (cnn1d, cnn2d, resnet)",
    "padding": "convolution padding: zero or circular",
    "bias": "use biases",
    "optimizer": f"optimizer: {', '.join(OPTIMIZERS)}",
    "lr": "global learning rate (the rule multiplies it per layer)",
    "momentum": "momentum of --optimizer=momentum",
    "weight_decay": "decoupled weight decay, per step lr x wd (default 0.5 for adamw, else 0)",
    "steps": "number of training steps",
    "batch_size": "examples per step",
    "seed": "seed of the init and the batch order",
    "dataset": f"dataset: {', '.join(data.names())}; empty = the model's default",
    "workdir": "output folder; empty = runs/<model>_<rule>_w<width>_d<depth>_s<seed>",
    "eval_every": "evaluate on the test split every this many steps (and at the end)",
    "log_every": "print progress every this many steps",
    # scale: devices, checkpoints, sweeps, data, outputs
    "mesh": "device mesh like data:8 or data:4,model:2; sweeps: members:8 (runs split over "
    "devices) or members:4,data:2; empty = every device on data",
    "fsdp": "shard parameters and optimizer state over the data axis (FSDP) instead of copying",
    "checkpoint_every": "orbax checkpoint every this many steps and at the end; 0 = none",
    "keep_checkpoints": "how many of the newest checkpoints to keep",
    "lrs": "comma-separated (peak) learning rates: train them all at once (vmap), write sweep.json",
    "seeds": "sweeps: number of seeds per learning rate (--seed, --seed+1, ...)",
    "data_dir": "tensorflow-datasets data_dir holding prepared mnist, cifar10, ... files",
    "tensorboard": "also write TensorBoard events to workdir/tensorboard (needs tensorboardX)",
    "plots": "write metrics.png (and sweep.png) at the end",
    "coordinator_address": "multi-host: host:port of process 0 (with --num_processes)",
    "num_processes": "multi-host: number of processes in the run",
    "process_id": "multi-host: this process's index, 0 .. num_processes-1",
    # training features: schedule, clipping, dtype, augmentation
    "schedule": "lr schedule on the global lr (peak --lr, or each of --lrs): constant, cosine "
    "and linear (decay to 0 at --steps), rsqrt (1/sqrt(1 + t/warmup)); per-layer rule "
    "multipliers keep their ratios",
    "warmup_steps": "linear warm-up from lr/warmup to the peak lr over this many steps",
    "clip_norm": "clip the gradients' global norm to this before the optimizer and the rule's "
    "multipliers; 0 = off",
    "dtype": "compute dtype: float32, or bfloat16 (forward and backward in bfloat16; params, "
    "optimizer state and loss in float32)",
    "augment": "augmentation of image training batches: auto (crop_flip for cifar10/cifar100, "
    "none for others), none, flip, crop (zero-pad 1/8 of the side, random crop), crop_flip",
    "connect_timeout": "multi-host: seconds to wait for the coordinator and every process",
    # transformers (lm, vit)
    "heads": "lm/vit: attention heads, fixed as width grows (head size = width / heads grows, "
    "and muP scales the logits by sqrt(d0)/d); ignored when --head_dim > 0",
    "head_dim": "lm/vit: > 0 fixes the head size instead (heads = width / head_dim grow with "
    "width; logits keep 1/sqrt(head_dim) under every rule)",
    "mlp_ratio": "lm/vit: MLP hidden units = mlp_ratio x width",
    "positions": "lm/vit: learned (position embeddings) or rotary (RoPE on queries and keys)",
    "tied": "lm: readout shares the token embedding (scaled as the rule's output layer)",
    "pooling": "vit: cls (class token) or mean (over patches)",
    "patch_size": "vit: patch side in pixels (steps for 1D sets); 0 = a 4x4 grid of patches "
    "for images, 8 patches for sequences",
    "seq_len": "text sets (lm): tokens (bytes) per training window",
    **RUN_AXES_HELP,  # --base_steps, --weight_decay_mode, --transfer_from, ...
}

DEFINE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}
# Fields whose default (None) does not tell the type.
FLAG_TYPES = {"weight_decay": float, "lr": float, "normalization": str}
for name, default in FLAG_DEFAULTS.items():
    kind = FLAG_TYPES.get(name, type(default))
    if name in PER_MODEL:
        kind = FLAG_TYPES.get(name, int)
        defaults = {m: model_default(m, name) for m in zoo.names()}
        shown = ", ".join(f"{m} {v}" for m, v in defaults.items())
        HELP[name] += f" (default per model: {shown})"
    DEFINE[kind](name, default, HELP[name])


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, but a bad flag is one line and exit status 2, not a usage dump, and
    --help exits 0 (absl's own --help exits 1)."""
    return errors.parse_flags(argv, __doc__)


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the output
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])}; flags look like --name=value")
    values = {name: flags.FLAGS[name].value for name in FLAG_DEFAULTS}
    config = TrainConfig.from_flags(**values)  # per-model defaults filled in
    from scaling_training import transfer
    from scaling_training.distributed import initialize
    from scaling_training.interrupts import Interrupted, delivered, rerun_advice
    from scaling_training.loop import train
    from scaling_training.validation import validate_processes

    try:
        given = {name for name in FLAG_DEFAULTS if flags.FLAGS[name].present}
        # --transfer_from: the proxy's settings for the flags not given
        config = TrainConfig.from_flags(**transfer.resolve(values, given))
        with delivered():  # Ctrl-C / SIGTERM: Interrupted, never half a checkpoint
            validate_processes(config)  # before joining, so a bad flag is named as such
            initialize(config)
            result = train(config)
    except ConfigError as e:
        fail(str(e))
    except OSError as e:  # outputs.WriteError, or the disk failing anywhere else
        fail(f"{e}; free space or fix the disk, then {rerun_advice(config)}", EXIT_WRITE_FAILED)
    except Interrupted as e:
        fail(f"interrupted by {e.name}; {rerun_advice(config)}", e.status)
    except RuntimeError as e:  # JAX_PLATFORMS naming a backend that is not there
        if "initialize backend" not in str(e):
            raise
        from scaling_training.messages import backend_error

        fail(backend_error(e))
    if result.diverged:
        fail(
            f"diverged: non-finite loss at step {result.steps_done}; try a smaller --lr "
            f"(was {config.lr:g}). Metrics up to then are in {config.workdir_path}",
            EXIT_DIVERGED,
        )


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
