"""One prepared accelerator run: fraction of peak, conv path, rule overhead, sweeps, scan/loop.

    python benchmarks/gpu_suite.py --out $OUT [--quick | --tiny] [--budget=360]

Everything is a ratio of sides timed interleaved in this one process (medians of jitted
`lax.scan` chunks of Adam steps; muP, random data on the device). Sections:
1. peak: a jitted n x n matmul in float32 and bfloat16 (2 n^3 FLOPs) is the measured peak;
   then steps/s and FLOP/s of the muP MLP, the lm and a ResNet in float32 and with
   bfloat16 compute (`make_train_chunk(..., compute_dtype)`, as `train.py --dtype`). FLOPs
   of a step: XLA's `cost_analysis()` of the lowered single step of the same model with
   its blocks unrolled (a scan's body would be counted once), float32, used for both dtypes.
2. conv: ResNet steps with `rules.Conv`'s im2col (our default) against `lax`
   (`lax.conv_general_dilated`, cuDNN on GPUs), blocks scanned and unrolled, four sides.
3. overhead: ours against rule_overhead.py's hand-written plain Flax step (MLP; lm unrolled).
4. sweep: sweep_in_process.py's vmapped 16-lr x 2-seed program against the same 32 members
   one after another, compile excluded and included.
5. scan: scanned blocks against a Python loop (lm measured here; resnet from section 2).
Each section has a share of `--budget` seconds; an item that would overrun its section's
share (estimated by the section's longest item so far) is recorded as "skipped: budget",
and an item that fails is recorded with its error, so one bad item never loses the run.
Writes gpu_suite.json and gpu_suite.md to --out (default $OUT) after every item.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

import common
import jax
import jax.numpy as jnp
import rule_overhead
import sweep_in_process
from flax import nnx

import rules
import zoo
from scaling_training.engine import make_step, make_train_chunk, split_model


@dataclasses.dataclass(frozen=True)
class Sizes:
    matmul: int
    mlp: tuple[int, int]  # width, batch (input 784, depth 3, base width 64)
    lm: tuple[int, int, int, int]  # width, blocks, tokens, batch (256-byte vocabulary)
    resnet: tuple[int, int, int, int]  # depth, width, image side, batch (3 channels)
    conv: tuple[tuple[int, ...], int, tuple[int, ...]]  # depths, width, batches (side as resnet)
    sweep: tuple[tuple[int, ...], int]  # widths, steps
    steps: int  # per timed chunk
    repeats: int


FULL = Sizes(8192, (4096, 1024), (1024, 8, 512, 16), (56, 64, 32, 128),
             ((20, 56), 16, (128, 1024)), ((256, 4096), 50), 10, 5)  # fmt: skip
QUICK = Sizes(512, (256, 64), (64, 2, 32, 4), (14, 8, 16, 16), ((8, 14), 4, (16, 64)),
              ((32, 64), 5), 3, 2)  # fmt: skip
TINY = Sizes(128, (32, 8), (32, 1, 8, 2), (8, 4, 8, 4), ((8,), 4, (4,)), ((16,), 2), 2, 1)
SHARES = {"peak": 0.28, "conv": 0.30, "overhead": 0.14, "sweep": 0.16, "scan": 0.12}
KEY = jax.random.key(0)


class Section:
    """Rows of one section, run item by item within its share of the time budget."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.longest, self.rows = seconds, time.monotonic(), 0.0, []
        self.save = lambda: None  # main() sets it: called after every item, so a run stopped
        # midway keeps what it measured

    def item(self, label: str, fn) -> list[dict]:
        elapsed = time.monotonic() - self.start
        if elapsed + self.longest > self.seconds:
            rows = [{"item": label, "status": "skipped: budget"}]
        else:
            began = time.monotonic()
            try:
                rows = [{"item": label, **row, "status": "ok"} for row in fn()]
            except Exception as error:  # noqa: BLE001 -- record it, keep the run going
                first = (str(error).splitlines() or [""])[0][:160]
                rows = [{"item": label, "status": f"error: {type(error).__name__}: {first}"}]
            self.longest = max(self.longest, time.monotonic() - began)
        for row in rows:
            print("  " + ", ".join(f"{k}={fmt(v)}" for k, v in row.items()), flush=True)
        self.rows += rows
        self.save()
        return rows


def fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------- models and sides
# (config, zoo name, width / base width); muP throughout
def mlp(s: Sizes, **kw) -> tuple[zoo.ModelConfig, str, float]:
    width, base = s.mlp[0], min(64, s.mlp[0])
    return zoo.ModelConfig(input_shape=(784,), num_classes=10, width=width, depth=3,
                           base_width=base, **kw), "mlp", width / base  # fmt: skip


def lm(s: Sizes, **kw) -> tuple[zoo.ModelConfig, str, float]:
    width, depth, length, _ = s.lm
    return zoo.ModelConfig(input_shape=(length,), num_classes=256, width=width, depth=depth,
                           base_width=width // 4, normalization="layer",
                           heads=max(2, width // 128), **kw), "lm", 4.0  # fmt: skip


def resnet(depth: int, width: int, side: int, **kw) -> tuple[zoo.ModelConfig, str, float]:
    return zoo.ModelConfig(input_shape=(side, side, 3), num_classes=10, width=width,
                           depth=depth, base_width=max(1, width // 4), normalization="batch",
                           **kw), "resnet", width / max(1, width // 4)  # fmt: skip


def data(config: zoo.ModelConfig, name: str, steps: int, batch: int):
    if name == "lm":
        xs = jax.random.randint(KEY, (steps, batch, *config.input_shape), 0, 256)
        return xs, jnp.roll(xs, -1, axis=-1)
    xs = jax.random.normal(KEY, (steps, batch, *config.input_shape))
    return xs, jax.random.randint(KEY, (steps, batch), 0, config.num_classes)


def side(config: zoo.ModelConfig, name: str, xs, ys, dtype=None):
    """A compiled chunk of Adam steps of the model, as a blocking call (rule_overhead.runner)."""
    model = zoo.build(name, config, rules.mup, nnx.Rngs(0))
    graphdef, params, rest = split_model(model)
    tx = rules.optimizer("adam", 1e-3, rules.param_scales(model), inject=True)
    chunk = make_train_chunk(graphdef, tx, dtype)
    return rule_overhead.runner(chunk, params, rest, tx.init(params), xs, ys)


def step_flops(config: zoo.ModelConfig, name: str, x, y) -> float:
    """cost_analysis FLOPs of one step of the unrolled model, lowered on abstract values."""
    config = dataclasses.replace(config, scan_blocks=False)
    model = nnx.eval_shape(lambda: zoo.build(name, config, rules.mup, nnx.Rngs(0)))
    graphdef, params, rest = split_model(model)
    tx = rules.optimizer("adam", 1e-3, rules.param_scales(model), inject=True)
    opt_state = jax.eval_shape(tx.init, params)
    cost = jax.jit(make_step(graphdef, tx)).lower(params, rest, opt_state, x, y).cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def per_step(fns: dict, s: Sizes) -> dict[str, float]:
    return {k: t / s.steps for k, t in common.interleaved(fns, s.repeats).items()}


# ---------------------------------------------------------------- sections
def peak(sec: Section, s: Sizes) -> dict[str, float]:
    def matmuls():
        n, out = s.matmul, []
        fns = {}
        for dtype in (jnp.float32, jnp.bfloat16):
            a = jax.random.normal(KEY, (n, n), dtype)
            b = jax.random.normal(jax.random.key(1), (n, n), dtype)
            f = jax.jit(jnp.matmul).lower(a, b).compile()
            fns[jnp.dtype(dtype).name] = lambda f=f, a=a, b=b: jax.block_until_ready(f(a, b))
            fns[jnp.dtype(dtype).name]()
        for dtype, t in common.interleaved(fns, max(3, s.repeats)).items():
            out.append({"dtype": dtype, "ms": 1e3 * t, "TFLOP/s": 2 * n**3 / t / 1e12})
        return out

    rows = sec.item(f"matmul {s.matmul}^3", matmuls)
    peaks = {r["dtype"]: r["TFLOP/s"] for r in rows if "TFLOP/s" in r}
    models = {"mlp": (mlp(s), s.mlp[1]), "lm": (lm(s), s.lm[3]),
              "resnet": (resnet(*s.resnet[:3]), s.resnet[3])}  # fmt: skip
    for label, ((config, name, _), batch) in models.items():

        def measure(config=config, name=name, batch=batch):
            xs, ys = data(config, name, s.steps, batch)
            flops = step_flops(config, name, xs[0], ys[0])
            fns = {"float32": side(config, name, xs, ys),
                   "bfloat16": side(config, name, xs, ys, jnp.bfloat16)}  # fmt: skip
            units = batch * (config.input_shape[0] if name == "lm" else 1)
            out = []
            for dtype, t in per_step(fns, s).items():
                achieved = flops / t / 1e12
                nan = float("nan")
                out.append({"dtype": dtype, "steps/s": 1 / t,
                            "tokens/s" if name == "lm" else "examples/s": units / t,
                            "GFLOP/step": flops / 1e9, "TFLOP/s": achieved,
                            "% bf16 peak": 100 * achieved / peaks.get("bfloat16", nan),
                            "% own peak": 100 * achieved / peaks.get(dtype, nan)})  # fmt: skip
            return out

        sec.item(f"{label} {describe(config, batch)}", measure)
    return peaks


def describe(config: zoo.ModelConfig, batch: int) -> str:
    return f"width {config.width} depth {config.depth} input {config.input_shape} batch {batch}"


def conv(sec: Section, s: Sizes) -> None:
    depths, width, batches = s.conv
    side_px = s.resnet[2]
    for batch in batches:
        for depth in depths:

            def measure(depth=depth, batch=batch):
                config, name, _ = resnet(depth, width, side_px)
                xs, ys = data(config, name, s.steps, batch)
                fns = {}
                for impl in ("im2col", "lax"):
                    for scan in (True, False):
                        c = dataclasses.replace(config, conv_implementation=impl, scan_blocks=scan)
                        fns[(impl, scan)] = side(c, name, xs, ys)
                t = per_step(fns, s)
                return [{"blocks": "scan" if scan else "loop", "im2col ms": 1e3 * t["im2col", scan],
                         "lax ms": 1e3 * t["lax", scan],
                         "im2col / lax": t["im2col", scan] / t["lax", scan],
                         "scan / loop (im2col)": t["im2col", True] / t["im2col", False],
                         "scan / loop (lax)": t["lax", True] / t["lax", False]}
                        for scan in (True, False)]  # fmt: skip

            sec.item(f"resnet-{depth} width {width} {side_px}x{side_px}x3 batch {batch}", measure)


def overhead(sec: Section, s: Sizes) -> None:
    def run(config, name, n, batch, plain):
        xs, ys = data(config, name, s.steps, batch)
        ours = zoo.build(name, config, rules.mup, nnx.Rngs(0))
        t = rule_overhead.measure(name, ours, plain, n, xs, ys, s.repeats)
        ours_ms, plain_ms = 1e3 * t["ours"], 1e3 * t["plain"]
        return [{"ours ms": ours_ms, "plain ms": plain_ms, "ours / plain": ours_ms / plain_ms}]

    config, name, n = mlp(s)
    plain = lambda: rule_overhead.PlainMLP(784, config.width, 3, 10, n, nnx.Rngs(0))  # noqa: E731
    sec.item(f"mlp {describe(config, s.mlp[1])}", lambda: run(config, name, n, s.mlp[1], plain()))
    lm_config, _, lm_n = lm(s, scan_blocks=False)
    width, depth, length, batch = s.lm
    plain_lm = rule_overhead.PlainLM  # a Python loop of blocks, as ours with scan_blocks=False
    sec.item(f"lm {describe(lm_config, batch)} (loop)", lambda: run(lm_config, "lm", lm_n, batch,
             plain_lm(256, length, width, depth, lm_config.heads, lm_n, nnx.Rngs(0))))  # fmt: skip


def sweep(sec: Section, s: Sizes) -> None:
    widths, steps = s.sweep
    for width in widths:

        def measure(width=width):
            run_sweep, run_loop, compile_sweep, compile_run = sweep_in_process.setup(width, steps)
            t = common.interleaved({"sweep": run_sweep, "loop": run_loop}, max(2, s.repeats))
            members = len(sweep_in_process.LRS) * len(sweep_in_process.SEEDS)
            # incl. compile: each side's first call, plus the other members' steady calls
            loop_incl = compile_run + t["loop"] * (members - 1) / members
            return [{"steps": steps, "sweep s": t["sweep"], "32 runs s": t["loop"],
                     "runs / sweep": t["loop"] / t["sweep"], "first call sweep s": compile_sweep,
                     "first call run s": compile_run,
                     "runs / sweep incl. compile": loop_incl / compile_sweep}]  # fmt: skip

        sec.item(f"mlp width {width} batch 128, 16 lrs x 2 seeds", measure)


def scan_vs_loop(sec: Section, s: Sizes, conv_rows: list[dict]) -> None:
    def measure():
        config, name, _ = lm(s)
        xs, ys = data(config, name, s.steps, s.lm[3])
        t = per_step({scan: side(dataclasses.replace(config, scan_blocks=scan), name, xs, ys)
                      for scan in (True, False)}, s)  # fmt: skip
        return [{"scan ms": 1e3 * t[True], "loop ms": 1e3 * t[False],
                 "scan / loop": t[True] / t[False]}]  # fmt: skip

    sec.item(f"lm {describe(lm(s)[0], s.lm[3])}", measure)
    for row in conv_rows:
        if row["status"] == "ok" and row["blocks"] == "scan":
            ratio = row["scan / loop (im2col)"]
            sec.rows.append({"item": row["item"] + " (im2col, from conv)",
                             "scan ms": row["im2col ms"], "loop ms": row["im2col ms"] / ratio,
                             "scan / loop": ratio, "status": "ok"})  # fmt: skip


# ---------------------------------------------------------------- output
def environment() -> dict:
    import flax
    import jaxlib
    import optax

    device = jax.devices()[0]
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"device": f"{device.platform}: {device.device_kind}", "devices": jax.device_count(),
            "python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "matmul precision": str(jax.config.jax_default_matmul_precision),
            "load average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "started": now}  # fmt: skip


def conv_rows(result: dict) -> list[dict]:
    return result["sections"].get("conv", {}).get("rows", [])


def markdown(result: dict) -> str:
    lines = ["# gpu_suite", "", f"`{result['command']}`", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items()]
    for name, section in result["sections"].items():
        lines += ["", f"## {name} ({section['seconds']:.0f} s of {section['budget']:.0f} s)", ""]
        columns = list(dict.fromkeys(k for row in section["rows"] for k in row))
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |"
                  for row in section["rows"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder (default $OUT)")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds for all sections")
    parser.add_argument("--sections", nargs="+", default=list(SHARES), choices=list(SHARES),
                        help="run only these (each keeps its share of --budget)")  # fmt: skip
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke run)")
    size.add_argument("--tiny", action="store_true", help="smallest sizes (the test)")
    args = parser.parse_args(argv)
    if not args.out:
        print("gpu_suite: give --out DIR or set $OUT", file=sys.stderr)
        return 2
    if args.budget <= 0:
        print(f"gpu_suite: --budget must be > 0, got {args.budget}", file=sys.stderr)
        return 2
    s = TINY if args.tiny else QUICK if args.quick else FULL
    command = " ".join(["python benchmarks/gpu_suite.py", *(argv or sys.argv[1:])])
    result = {"command": command, "environment": environment(), "sizes": dataclasses.asdict(s),
              "sections": {}}  # fmt: skip
    print("\n".join(f"{k}: {v}" for k, v in result["environment"].items()), flush=True)
    os.makedirs(args.out, exist_ok=True)
    runs = {"peak": peak, "conv": conv, "overhead": overhead, "sweep": sweep,
            "scan": lambda sec, s: scan_vs_loop(sec, s, conv_rows(result))}  # fmt: skip
    for name in args.sections:
        print(f"\n[{name}]", flush=True)
        sec = Section(SHARES[name] * args.budget)
        entry = result["sections"][name] = {"budget": sec.seconds, "rows": sec.rows}

        def save(sec=sec, entry=entry) -> None:
            entry["seconds"] = time.monotonic() - sec.start
            with open(os.path.join(args.out, "gpu_suite.json"), "w") as f:
                json.dump(result, f, indent=1, default=str)
            with open(os.path.join(args.out, "gpu_suite.md"), "w") as f:
                f.write(markdown(result))

        sec.save = save
        runs[name](sec, s)
        save()
    print("\n" + markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
