"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8 (set by the
test before jax starts): trains the same small config on several meshes in one process and
prints one JSON line of the results for tests/test_scale_devices.py to check."""

import json
import os
import sys

import jax
import numpy as np

from scaling_training.config import ConfigError, TrainConfig
from scaling_training.loop import train
from scaling_training.progress import read_metrics
from scaling_training.sharding import make_plan

root = sys.argv[1]
small = dict(
    width=32,
    base_width=16,
    depth=2,
    steps=12,
    eval_every=6,
    log_every=6,
    batch_size=32,
    dataset="teacher",
    checkpoint_every=0,
    plots=False,
)
out = {"devices": jax.device_count(), "losses": {}, "test": {}, "errors": {}}
for mesh, fsdp in (("data:1", False), ("data:8", False), ("data:4,model:2", True)):
    workdir = os.path.join(root, mesh.replace(":", "").replace(",", "_"))
    config = TrainConfig.from_flags(**small, mesh=mesh, fsdp=fsdp, workdir=workdir)
    train(config, echo=lambda _: None)
    records = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    out["losses"][mesh] = [r["train_loss"] for r in records if "train_loss" in r]
    out["test"][mesh] = [r["test_loss"] for r in records if "test_loss" in r]

# FSDP really splits parameters: each device holds a slice of the hidden kernel.
plan = make_plan("data:4,model:2", fsdp=True, batch_size=32)
kernel = plan.place(np.zeros((32, 32), np.float32), plan.param_shardings(np.zeros((32, 32))))
out["fsdp_shard_shape"] = list(kernel.addressable_shards[0].data.shape)
replicated = make_plan("data:8", fsdp=False, batch_size=32)
kernel = replicated.place(np.zeros((32, 32)), replicated.param_shardings(np.zeros((32, 32))))
out["replicated_shard_shape"] = list(kernel.addressable_shards[0].data.shape)

# Sweeps: 4 lrs (one diverging) x 2 seeds = 8 members on several meshes.
out["sweeps"] = {}
for mesh in ("data:1", "data:8", "members:8", "members:4,data:2"):
    workdir = os.path.join(root, "sweep_" + mesh.replace(":", "").replace(",", "_"))
    sweep = dict(small, optimizer="sgd", lrs="0.03,1e5,0.3,0.1", seeds=2, eval_every=12)
    train(TrainConfig.from_flags(**sweep, mesh=mesh, workdir=workdir), echo=lambda _: None)
    with open(os.path.join(workdir, "sweep.json")) as f:
        out["sweeps"][mesh] = json.load(f)

for mesh, batch in (("data:16", 32), ("data:8", 30), ("data:2,model:2,data:2", 32)):
    try:
        make_plan(mesh, fsdp=False, batch_size=batch)
    except ConfigError as e:
        out["errors"][mesh] = str(e)
print(json.dumps(out))
