"""Learning-rate transfer of the transformers (lm, vit) across width or depth, per rule.

    python experiments/transformer_transfer.py --family=lm --rules=mup,sp \
        --widths=64,128,256,512 --depth=2 --out=runs/transfer/lm_width

For every rule and size: one vmapped Adam sweep over --lrs (scaling.transfer.measure, the
probe behind `python -m scaling transfer`); eta_opt here is the mean of the per-seed optima
(training loss over the last 10% of steps, refined by a parabola in log2 LR); the plot shows
the final training loss on a fixed training subset. Writes OUT/<rule>.json after each rule (partial
results survive an interrupted run) and OUT/transfer.png (loss against LR, one panel per
rule, one line per size). Transformers need options the probe CLI does not take (pre-LN
norm, text windows), hence this script.
"""

from __future__ import annotations

import argparse
import json
import os
import time


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
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--replot", action="store_true", help="plot OUT/<rule>.json of --rules only")
    args = p.parse_args()
    if args.replot:
        records = {}
        for rule in args.rules.split(","):
            with open(os.path.join(args.out, f"{rule}.json")) as f:
                records[rule] = json.load(f)
        lrs = next(iter(records.values()))["lrs"]
        plot(records, lrs, os.path.join(args.out, "transfer.png"), args.family)
        for rule, record in records.items():
            optima = ", ".join(f"{o:.3g}" for o in record["eta_opt"])
            print(f"{rule}: eta_opt {optima} over {record['axis']} {record['sizes']}: "
                  f"max/min {record['shift']:.2f}x")  # fmt: skip
        return

    import numpy as np

    import scaling_data as data
    from scaling import transfer
    from scaling.setup import ProbeModel

    dataset = data.load("grammar_text" if args.family == "lm" else "digits", seq_len=args.seq_len)
    lrs = [float(v) for v in args.lrs.split(",")]
    if args.depths:
        axis, sizes, fixed = "depth", [int(v) for v in args.depths.split(",")], args.width
    else:
        axis, sizes, fixed = "width", [int(v) for v in args.widths.split(",")], args.depth
    os.makedirs(args.out, exist_ok=True)
    records = {}
    for rule in args.rules.split(","):
        spec = ProbeModel(
            model=args.family,
            rule=rule,
            base_width=args.base_width,
            base_depth=args.base_depth or None,
            optimizer="adam",
            use_bias=True,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            options=(("normalization", "layer"), ("heads", args.heads)),
        )
        start, results = time.perf_counter(), []
        for size in sizes:  # one size at a time: the JSON grows as sizes finish
            result = transfer.measure(
                spec, [size], axis, fixed, lrs, args.seeds, dataset, args.steps, args.batch_size,
                "adam", echo=lambda line, rule=rule: print(f"{rule}: {line}", flush=True),
            )  # fmt: skip
            results += result["results"]
            optima = [float(np.nanmean(e["eta_opt"])) for e in results]
            records[rule] = {
                "lrs": lrs,
                "results": results,
                "rule": rule,
                "axis": axis,
                "sizes": sizes[: len(results)],
                "eta_opt": optima,
                "shift": max(optima) / min(optima),
                "seconds": time.perf_counter() - start,
                "settings": vars(args),
            }
            with open(os.path.join(args.out, f"{rule}.json"), "w") as f:
                json.dump(records[rule], f, indent=1)
            plot(records, lrs, os.path.join(args.out, f"transfer_{rule}.png"), args.family)
        print(
            f"{rule}: eta_opt {', '.join(f'{o:.3g}' for o in optima)} over {axis} {sizes}: "
            f"max/min {records[rule]['shift']:.2f}x ({records[rule]['seconds']:.0f} s)",
            flush=True,
        )
    plot(records, lrs, os.path.join(args.out, "transfer.png"), args.family)


def plot(records: dict, lrs: list[float], path: str, family: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 4), squeeze=False)
    for ax, (rule, record) in zip(axes[0], records.items()):
        for entry, optimum in zip(record["results"], record["eta_opt"]):
            loss = np.nanmean(np.asarray(entry["train_loss"], float), axis=0)
            line = ax.plot(lrs, loss, marker="o", label=f"{record['axis']} {entry[record['axis']]}")
            ax.axvline(optimum, color=line[0].get_color(), ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("Adam learning rate")
        ax.set_ylabel("final train loss")
        ax.set_title(f"{family} {rule}: optimum moves {record['shift']:.2f}x")
        finite = np.concatenate([np.ravel(e["train_loss"]) for e in record["results"]]).astype(
            float
        )
        finite = finite[np.isfinite(finite)]
        if finite.size:
            ax.set_ylim(finite.min() - 0.05, min(finite.max(), finite.min() * 2.5) + 0.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
