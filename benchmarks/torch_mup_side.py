"""The PyTorch + microsoft/mup side of vs_torch_mup.py; runs in the optional torch venv.

    .bench-venv-torch/bin/python benchmarks/torch_mup_side.py --width=512 --steps=200

Builds the muP MLP (input 40, 3 hidden layers of `width`, relu, MuReadout to 10 classes,
base width 64 via `set_base_shapes`), trains `--steps` MuAdam steps on in-memory random
batches of 128 after 3 warm-up steps (at most --max_seconds of
them), and prints one JSON line with steps per second.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from mup import MuAdam, MuReadout, set_base_shapes
from torch import nn


def mlp(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(40, width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(),
        MuReadout(width, 10),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max_seconds", type=float, default=10.0, help="stop timing early")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = its default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = mlp(args.width)
    set_base_shapes(model, mlp(64), delta=mlp(128))
    optimizer = MuAdam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xs = torch.randn(args.steps, args.batch, 40)
    ys = torch.randint(0, 10, (args.steps, args.batch))

    def step(i: int) -> None:  # eager CPU torch: done when it returns
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i]), ys[i])
        loss.backward()
        optimizer.step()

    for i in range(3):
        step(i)
    start = time.perf_counter()
    done = 0
    while done < args.steps and time.perf_counter() - start < args.max_seconds:
        step(done)
        done += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"steps_per_s": done / seconds, "steps": done, "threads": args.threads}))


if __name__ == "__main__":
    main()
