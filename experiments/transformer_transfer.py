"""Learning-rate transfer of the transformers (lm, vit) across width or depth, per rule.

    python experiments/transformer_transfer.py --family=lm --rules=mup,sp \
        --widths=64,128,256,512 --depth=2 --out=runs/transfer/lm_width

For every rule and size: one vmapped Adam (--optimizer=muon: Muon) sweep over --lrs
(scaling.transfer.measure, the probe behind `python -m scaling transfer`); eta_opt here is
the optimum of the seed-mean curve of the training loss over the last 10% of steps
(`scaling.optimum`), and the plot shows that loss (files older than it: the final loss on
a fixed training subset). Writes
OUT/<rule>.json after each size (partial results survive an interrupted run) and
OUT/transfer.png (loss against LR, one panel per rule, one line per size). Transformers
need options the probe CLI does not take (pre-LN norm, text windows), hence this script.

The JSON in experiments/results/ lm_width_{mup,sp}, lm_depth_* and vit_width_{mup,sp}
predate the tail-loss optimum (2026-11-24): their per-seed optima come from the final
training loss (lm_width_s2_* and vit_width_s4_* are measured the new way). `--add` to an old
file mixes the two.

`--add` appends the sizes missing from an existing OUT/<rule>.json instead of redoing the
ones it holds; every setting that defines the protocol must match the file's (else an error),
except --lrs: a size may sweep its own window of the grid (members of a sweep are trained
independently, so a shared LR gives the same loss in either window).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import NoReturn

# settings that define the protocol: a size added with --add must share them
PROTOCOL = ("family", "steps", "batch_size", "seq_len", "seeds", "heads", "head_dim",
            "base_width", "base_depth", "optimizer")  # fmt: skip


# protocol settings newer than some result files: a file without one used this value
ADDED_LATER = {"head_dim": 0, "optimizer": "adam"}


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def protocol_mismatch(old: dict, new: dict, axis: str) -> str | None:
    """The first protocol setting in which `new` differs from `old` (None: they agree)."""
    fixed = "depth" if axis == "width" else "width"
    old_axis = "depth" if old.get("depths") else "width"
    if old_axis != axis:
        return f"axis is {axis} here but {old_axis} in the file"
    for key in (*PROTOCOL, fixed):
        default = ADDED_LATER.get(key)
        if old.get(key, default) != new.get(key, default):
            return (
                f"--{key} is {new.get(key, default)} here but {old.get(key, default)} in the file"
            )
    return None


def summarize(rule: str, axis: str, results: list[dict], settings: dict, seconds: float) -> dict:
    """The JSON record of one rule: entries sorted by size, per-size mean optimum, shift."""
    import numpy as np

    results = sorted(results, key=lambda e: e[axis])
    # the seed-mean curve's optimum; entries written before it existed: mean per-seed optimum
    optima = [
        e["lr_opt"] if e.get("lr_opt") is not None else float(np.nanmean(e["eta_opt"]))
        for e in results
    ]
    return {
        "lrs": results[0].get("lrs", settings["lrs_list"]) if results else settings["lrs_list"],
        "results": results,
        "rule": rule,
        "axis": axis,
        "sizes": [e[axis] for e in results],
        "eta_opt": optima,
        "shift": max(optima) / min(optima),
        "seconds": seconds,
        "settings": {k: v for k, v in settings.items() if k != "lrs_list"},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=["lm", "vit"], default="lm")
    p.add_argument("--rules", default="mup,sp")
    p.add_argument("--widths", default="64,128,256,512")
    p.add_argument("--depths", default="", help="sweep depth instead (blocks), at --width")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--base_width", type=int, default=64)
    p.add_argument("--base_depth", type=int, default=0, help="0: each depth its own base")
    p.add_argument("--lrs", default="1.25e-4,2.5e-4,5e-4,1e-3,2e-3,4e-3,8e-3,1.6e-2")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seq_len", type=int, default=16)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--heads", type=int, default=4, help="fixed heads: head_dim grows with width")
    p.add_argument("--head_dim", type=int, default=0,
                   help="> 0: fixed head size instead (heads grow; logits 1/sqrt(d))")  # fmt: skip
    p.add_argument("--optimizer", choices=["adam", "muon"], default="adam",
                   help="muon: Muon for the hidden matrices, Adam for the rest")  # fmt: skip
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--add", action="store_true", help="append missing sizes to OUT/<rule>.json")
    p.add_argument("--test_windows", type=int, default=0,
                   help="test accuracy on the first N test examples only (0: all); the "
                   "optimum reads the training subset either way")  # fmt: skip
    p.add_argument("--replot", action="store_true", help="plot OUT/<rule>.json of --rules only")
    args = p.parse_args()
    try:
        lrs = [float(v) for v in args.lrs.split(",")]
        axis = "depth" if args.depths else "width"
        sizes = [int(v) for v in (args.depths or args.widths).split(",")]
    except ValueError as e:
        fail(f"--lrs, --widths and --depths are comma-separated numbers ({e})")
    if args.test_windows < 0:
        fail(f"--test_windows must be >= 0, got {args.test_windows}")
    if args.replot:
        names = args.rules.split(",")
        records = {rule: read(os.path.join(args.out, f"{rule}.json")) for rule in names}
        plot(records, os.path.join(args.out, "transfer.png"), args.family)
        for rule, record in records.items():
            report(rule, record)
        return

    olds = {}  # rule -> the record --add extends, checked before any slow import
    for rule in args.rules.split(","):
        path = os.path.join(args.out, f"{rule}.json")
        if args.add and os.path.exists(path):
            olds[rule] = read(path)
            mismatch = protocol_mismatch(olds[rule]["settings"], vars(args), axis)
            if mismatch:
                fail(f"--add to {path}: {mismatch}")

    import dataclasses

    import scaling_data as data
    from scaling import transfer
    from scaling.grid import GridSpec
    from scaling.setup import ProbeModel

    dataset = data.load("grammar_text" if args.family == "lm" else "digits", seq_len=args.seq_len)
    if args.test_windows:  # test accuracy is reported, not used: a subset saves CPU
        subset = slice(0, args.test_windows)
        dataset = dataclasses.replace(dataset, x_test=dataset.x_test[subset],
                                      y_test=dataset.y_test[subset])  # fmt: skip
    fixed = args.width if axis == "depth" else args.depth
    settings = {**vars(args), "lrs_list": lrs}
    os.makedirs(args.out, exist_ok=True)
    records = {}
    for rule in args.rules.split(","):
        path = os.path.join(args.out, f"{rule}.json")
        results, seconds, run_settings = [], 0.0, settings
        if rule in olds:
            old = olds[rule]
            results, seconds = old["results"], old["seconds"]
            run_settings = {**old["settings"], "lrs_list": old["lrs"],
                            "added": old["settings"].get("added", []) + [vars(args)]}  # fmt: skip
        spec = ProbeModel.of(
            name=args.family,
            rule=rule,
            base_width=args.base_width,
            base_depth=args.base_depth or None,
            optimizer=args.optimizer,
            use_bias=True,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            normalization="layer",
            heads=args.heads,
            head_dim=args.head_dim,
        )
        for size in sizes:  # one size at a time: the JSON grows as sizes finish
            if any(e[axis] == size for e in results):
                continue
            start = time.perf_counter()
            grid = GridSpec(spec, dataset, args.seeds, args.steps, args.batch_size, args.optimizer)
            result = transfer.measure(
                grid, [size], axis, fixed, lrs,
                echo=lambda line, rule=rule: print(f"{rule}: {line}", flush=True),
            )  # fmt: skip
            entry = result["results"][0]
            entry.update(lrs=lrs, test_examples=len(dataset.y_test),
                         seconds=time.perf_counter() - start)  # fmt: skip
            seconds += entry["seconds"]
            records[rule] = summarize(rule, axis, results + [entry], run_settings, seconds)
            results = records[rule]["results"]
            with open(path, "w") as f:
                json.dump(records[rule], f, indent=1)
            plot(records, os.path.join(args.out, f"transfer_{rule}.png"), args.family)
        if rule not in records and results:
            records[rule] = read(path)
        if rule in records:
            report(rule, records[rule])
    if records:
        plot(records, os.path.join(args.out, "transfer.png"), args.family)


def read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")


def report(rule: str, record: dict) -> None:
    edges = [e[record["axis"]] for e in record["results"] if any(e["optimum_at_grid_edge"])]
    edge_note = f"; optimum at the grid edge at {edges}" if edges else ""
    print(
        f"{rule}: eta_opt {', '.join(f'{o:.3g}' for o in record['eta_opt'])} over "
        f"{record['axis']} {record['sizes']}: max/min {record['shift']:.2f}x "
        f"({record['seconds']:.0f} s){edge_note}",
        flush=True,
    )


def plot(records: dict, path: str, family: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    fig, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 4), squeeze=False)
    for ax, (rule, record) in zip(axes[0], records.items()):
        # the loss the optimum was read from: the last 10% of steps (older files: final loss)
        key = "tail_loss" if all("tail_loss" in e for e in record["results"]) else "train_loss"
        for entry, optimum in zip(record["results"], record["eta_opt"]):
            loss = np.asarray(entry[key], float)
            loss = np.nanmean(np.where(np.isfinite(loss), loss, np.nan), axis=0)
            lrs = entry.get("lrs", record["lrs"])
            line = ax.plot(lrs, loss, marker="o", label=f"{record['axis']} {entry[record['axis']]}")
            ax.axvline(optimum, color=line[0].get_color(), ls=":", lw=1)
        ax.set_xscale("log")
        optimizer = record["settings"].get("optimizer", ADDED_LATER["optimizer"])
        ax.set_xlabel(f"{optimizer.capitalize()} learning rate")
        ax.set_ylabel("train loss, last 10% of steps" if key == "tail_loss" else "final train loss")
        ax.set_title(f"{family} {rule}: optimum moves {record['shift']:.2f}x")
        finite = np.concatenate([np.ravel(e[key]) for e in record["results"]]).astype(float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            # clip diverging ends, but keep at least one loss unit (small losses: the vit)
            top = min(finite.max(), max(finite.min() * 2.5, finite.min() + 1.0))
            ax.set_ylim(finite.min() - 0.05, top + 0.05)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
