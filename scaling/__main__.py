"""`python -m scaling PROBE --model=mlp --rule=mup --widths=64,128,256 --out=DIR`.

Writes DIR/PROBE.json and DIR/PROBE.png (earlier ones are moved to DIR/archive/<n>/) and
prints a short table. Exit status: 0 done; 2 a bad request (one line on stderr, checked
before anything runs); 4 the results could not be written (the line says where the
measurement was saved instead).
"""

from __future__ import annotations

import dataclasses
import json
import math

from absl import app, flags, logging

import rules
import zoo
from scaling import axes_flags
from scaling.checks import (
    check_cost,
    check_fits,
    check_layers,
    check_numbers,
    check_out,
    write_results,
)
from scaling.probes import PROBES, Report, Request
from scaling.setup import PROBE_DEFAULTS, probe_normalization
from scaling_training import errors
from scaling_training.errors import EXIT_WRITE_FAILED, ConfigError, fail, rule_error

flags.DEFINE_string(
    "model",
    "mlp",
    f"model family: {', '.join(zoo.names())}; or your own, module:function or file.py:function "
    "(coord and update; scaling/user_models.py says what the function takes)",
)
flags.DEFINE_string("rule", "mup", f"scaling rule: {', '.join(rules.names())}")
flags.DEFINE_string("rules_module", "", "module or .py file registering extra rules")
flags.DEFINE_list("widths", ["64", "128", "256"], "widths (comma separated)")
flags.DEFINE_list("depths", ["3"], "depths (comma separated)")
flags.DEFINE_integer(
    "seeds", 3, "seeds per size (transfer: 4 unless given; its optimum is a seed-mean curve's)"
)
flags.DEFINE_integer(
    "base_width",
    PROBE_DEFAULTS.base_width,
    "width at which the rule equals its base rule; 0 = each width (one LR)",
)
flags.DEFINE_integer("base_depth", 0, "depth at which depth rules are neutral; 0 = each depth")
flags.DEFINE_string(
    "activation", PROBE_DEFAULTS.activation, f"activation: {', '.join(sorted(rules.GAINS))}"
)
flags.DEFINE_bool("bias", PROBE_DEFAULTS.use_bias, "use biases")
flags.DEFINE_enum(
    "normalization",
    "",
    ["", *zoo.NORMALIZATIONS],
    "zoo models: normalization layers ('' = the probes' default: layer for lm and vit, which "
    "are pre-LN as train.py builds them, none for the others; batch = BatchNorm, trained in "
    "training mode, its statistics kept per member)",
)
flags.DEFINE_string("optimizer", "sgd", f"optimizer: {', '.join(rules.OPTIMIZERS)}")
flags.DEFINE_float("lr", 0.01, "learning rate (coord)")
flags.DEFINE_integer(
    "steps", 0, "optimizer steps; 0 = 3 for coord, 200 for transfer, transfer_error and maxlr"
)
flags.DEFINE_list(
    "lrs",
    [],
    "learning rates; '' = transfer and transfer_error: 19 LRs 2^(1/2) apart, 2^-7..2 (SGD) or "
    "2^-13..2^-4 (Adam); maxlr (the bracket's grid): 10 LRs 1e-3..3 (SGD) or 1e-4..0.1",
)
flags.DEFINE_float("threshold", 0.9, "test accuracy that counts as trained (maxlr)")
flags.DEFINE_integer("rounds", 3, "bracket-narrowing rounds (maxlr)")
flags.DEFINE_integer("batch_size", 128, "batch size (transfer, maxlr)")
flags.DEFINE_string("layers", "", "regex of layers entering the update criterion ('' = all)")
flags.DEFINE_string("dataset", "", "dataset giving the input shape; '' = the model's default")
flags.DEFINE_enum(
    "inputs",
    "synthetic",
    ["synthetic", "data"],
    "coord, update: synthetic = Gaussian inputs (random token ids for token models such as "
    "lm), data = examples of the model's dataset (scaling/inputs.py)",
)
flags.DEFINE_string("out", "scaling_out", "output folder")
flags.DEFINE_integer(
    "outputs", 0, "update: number of outputs of the model and its Gaussian target; 0 = the "
    "dataset's classes"
)  # fmt: skip
flags.DEFINE_enum(
    "protocol",
    "",
    ["", "jelassi"],
    "update: 'jelassi' = Jelassi et al. 2023's protocol, for flags not given: --rule=mean_field "
    "--base_width=0 (one LR for every layer) --outputs=1 --layers=^hidden (max over hidden "
    "layers), eta* averaged over seeds in log (one output makes it heavy-tailed). Already "
    "the probe's: one example, loss 1/2 |f - y|^2, one SGD step",
)

# What --protocol=jelassi sets, unless the flag is given.
PROTOCOLS = {
    "jelassi": {"rule": "mean_field", "base_width": 0, "outputs": 1, "layers": "^hidden"},
}


def parse(argv: list[str]) -> list[str]:
    """absl parsing with one-line flag errors; --help prints the flags and exits 0 (absl's
    own --help exits 1)."""
    return errors.parse_flags(argv, __doc__)


def _sizes(flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in flags.FLAGS[flag].value)
    except ValueError:
        raise ConfigError(
            flag, f"expected integers separated by commas, got {flags.FLAGS[flag].value}"
        ) from None
    if not values or min(values) < 1:
        raise ConfigError(flag, "sizes must be >= 1")
    return values


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)
    if len(argv) != 2 or argv[1] not in PROBES:
        fail(f"give one probe: python -m scaling {{{','.join(PROBES)}}} [flags]")
    try:
        run(argv[1], flags.FLAGS)
    except ConfigError as e:
        fail(str(e))
    except RuntimeError as e:  # JAX_PLATFORMS naming a backend that is not there
        if "initialize backend" not in str(e):
            raise
        from scaling_training.messages import backend_error

        fail(backend_error(e))
    except OSError as e:  # results could not be written; the message says where they are
        fail(str(e), EXIT_WRITE_FAILED)


def zoo_spec(f, dataset, outputs: int):
    """The probes' spec of a zoo family from the flags (`outputs`: the readout's size)."""
    from scaling.setup import ProbeModel

    return ProbeModel.of(
        rule=f.rule,
        name=f.model,
        base_width=f.base_width or None,
        base_depth=f.base_depth or None,
        activation=f.activation,
        optimizer=rules.OPTIMIZERS[f.optimizer],
        use_bias=f.bias,
        input_shape=dataset.input_shape,
        num_classes=outputs,
        **({"normalization": n} if (n := probe_normalization(f.model, f.normalization)) else {}),
    )


USER_MODEL_PROBES = ("coord", "update")


def apply_protocol(probe: str, f) -> None:
    """Fill the flags a --protocol sets (those not given on the command line)."""
    if not f.protocol:
        return
    if probe != "update":
        raise ConfigError(
            "protocol", f"{f.protocol} is a protocol of the update probe, not of {probe}"
        )
    for flag, value in PROTOCOLS[f.protocol].items():
        if not f[flag].present:
            f[flag].value = value


def run(probe: str, f) -> None:
    """Check every flag, run `probe`, write its results (ConfigError for a bad request,
    before anything runs; OSError when the results cannot be written)."""
    checked = read_flags(probe, f)
    request = make_request(probe, f, checked)
    report = run_probe(probe, request, f.model)
    write(probe, f, request, report)


@dataclasses.dataclass(frozen=True)
class Checked:
    """The flags read and checked, before the dataset is loaded."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    lrs: tuple[float, ...]
    axes: axes_flags.AxesRequest | None
    user_model: bool


def read_flags(probe: str, f) -> Checked:
    """Every flag on its own and with the others (ConfigError naming the first bad one);
    a --rules_module is imported here, so that --rule can name its rules."""
    apply_protocol(probe, f)
    if f.rules_module:
        try:
            rules.import_rules(f.rules_module)
        except BaseException as e:  # the user's file (any exception, KeyboardInterrupt too)
            from scaling_training.messages import user_error

            raise ConfigError(
                "rules_module", f"cannot import {f.rules_module!r}: {user_error(e)}"
            ) from None
    user_model = _check_choices(probe, f)
    try:
        lrs = tuple(float(v) for v in f.lrs)
    except ValueError:
        raise ConfigError(
            "lrs", f"expected numbers separated by commas, got {','.join(f.lrs)}"
        ) from None
    seeds = 4 if probe == "transfer" and not f["seeds"].present else f.seeds
    for flag in ("seeds", "rounds", "batch_size"):
        if f[flag].value < 1:
            raise ConfigError(flag, f"must be >= 1, got {f[flag].value}")
    for flag, zero in (("base_width", "each width"), ("base_depth", "each depth")):
        if f[flag].value < 0:
            raise ConfigError(flag, f"must be >= 0 (0 = {zero}), got {f[flag].value}")
    if f.outputs < 0 or (f.outputs and probe != "update"):
        raise ConfigError(
            "outputs", f"a number >= 1 for the update probe (0 = the dataset's), got {f.outputs}"
        )
    if f["inputs"].present and probe not in ("coord", "update"):
        raise ConfigError(
            "inputs", f"coord and update choose their inputs; {probe} trains on the dataset"
        )
    widths, depths = _sizes("widths"), _sizes("depths")
    check_numbers(probe, f.lr, lrs, f.steps, f.threshold)
    check_layers(f.layers)
    check_out(f.out, probe)
    axes = None
    if axes_flags.is_new_style(f):
        if probe not in ("transfer", "transfer_error"):
            raise ConfigError(
                "",
                f"--axis, --tune and their flags are for transfer and transfer_error, not {probe}",
            )
        axes = axes_flags.parse(f, widths, depths, f.steps or 200, f.optimizer)
    elif probe in ("transfer", "transfer_error"):
        axes_flags.check_old_axis(f, widths, depths)
    return Checked(widths, depths, seeds, lrs, axes, user_model)


def _check_choices(probe: str, f) -> bool:
    """--model, --rule, --activation, --optimizer among their choices and fit for `probe`;
    whether --model is the user's own (module:function or file.py:function)."""
    from scaling.user_models import is_user_model

    user_model = is_user_model(f.model)
    if user_model and probe not in USER_MODEL_PROBES:
        raise ConfigError(
            "model", f"{probe} runs zoo models; your own model works with coord and update"
        )
    if user_model and f.normalization:
        raise ConfigError(
            "normalization", "zoo models only; your own model has the layers it builds"
        )
    for flag, value, choices in [
        ("model", f.model, zoo.names() if not user_model else [f.model]),
        ("rule", f.rule, rules.names()),
        ("activation", f.activation, sorted(rules.GAINS)),
        ("optimizer", f.optimizer, list(rules.OPTIMIZERS)),
    ]:
        if value not in choices:
            raise ConfigError(
                flag, f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}"
            )
    if probe in ("update", "sharpness", "poly") and rules.OPTIMIZERS[f.optimizer] == "muon":
        raise ConfigError(
            "optimizer",
            f"{probe} takes gradient steps with the rule's multipliers, which "
            "say nothing of Muon's orthogonalised step; use coord (real optimizer steps)",
        )
    return user_model


def make_request(probe: str, f, checked: Checked) -> Request:
    """The probe's request: its dataset loaded, the model described, and the cost and
    memory of what it will train checked (ConfigError when too large)."""
    from scaling_training import datasets

    widths, depths, seeds = checked.widths, checked.depths, checked.seeds
    lrs, axes = checked.lrs, checked.axes
    dataset_name = f.dataset or zoo.DEFAULT_DATASETS.get(f.model, "mnist1d")
    dataset = datasets.load(dataset_name)
    if not checked.user_model:
        from scaling_training.pairs import pair_problem

        if pair_problem(f.model, dataset_name):
            raise ConfigError("dataset", pair_problem(f.model, dataset_name))
    # LR sweeps train every (seed, LR) at once; the other probes hold one model at a time
    sweeps = ("transfer", "maxlr", "transfer_error")
    grid = len(lrs) or (10 if probe == "maxlr" else 19)
    members = seeds * grid if probe in sweeps else 1
    batch_size = f.batch_size
    if axes is not None:  # the grid, plus the proxy's value and corrected LRs at each target
        per_seed = {"lr": grid, "weight_decay": 1, "both": grid}[axes.tune] * axes.grid_size
        members = seeds * (per_seed + 2 + len(axes.corrections))
        batch_size = max(p.batch_size for p in axes.points)
    outputs = f.outputs or dataset.num_classes
    blame = "seeds" if seeds > 1 or probe not in sweeps else "lrs"
    shape = dataset.input_shape
    steps = f.steps or (3 if probe == "coord" else 200)
    if axes is not None:  # the cost of the longest point, each at its own batch size
        steps = max(p.steps * p.batch_size for p in axes.points) // batch_size
    check_cost(f.model, widths, depths, members, batch_size, steps, shape, outputs, blame)
    check_fits(f.model, widths, depths, members, batch_size, shape, outputs, blame)
    if checked.user_model:
        from scaling.user_models import UserModel, load_factory

        try:
            factory = load_factory(f.model)
        except ValueError as e:
            raise ConfigError("model", str(e)) from None
        spec = UserModel(
            model=f.model,
            rule=f.rule,
            factory=factory,
            optimizer=rules.OPTIMIZERS[f.optimizer],
            input_shape=dataset.input_shape,
            num_classes=outputs,
        )
    else:
        spec = zoo_spec(f, dataset, outputs)
    return Request(
        spec=spec,
        widths=widths,
        depths=depths,
        seeds=seeds,
        lr=f.lr,
        steps=f.steps or (3 if probe == "coord" else 200),
        optimizer=f.optimizer,
        layers=f.layers,
        dataset=dataset_name,
        lrs=lrs,
        threshold=f.threshold,
        batch_size=f.batch_size,
        rounds=f.rounds,
        out=f.out,
        log_mean=f.protocol == "jelassi",
        inputs=f.inputs,
        axes=axes,
    )


def run_probe(probe: str, request: Request, model: str) -> Report:
    """The probe's measurement; a rule that does not fit the model, or a request the probe
    cannot run (any ValueError it raises), is a ConfigError."""
    try:
        return PROBES[probe](request)
    except rules.RuleError as e:
        raise rule_error(e, model) from None
    except ValueError as e:
        raise ConfigError("", f"{probe}: {e}") from None


def write(probe: str, f, request: Request, report: Report) -> None:
    """Print the table, and write OUT/PROBE.json (the flags that describe the run, then the
    probe's record) and OUT/PROBE.png; OSError saying where the measurement went if not."""
    record = {
        "probe": probe,
        "model": f.model,
        "rule": f.rule,
        "seeds": request.seeds,
        "base_width": f.base_width or None,
        "base_depth": f.base_depth or None,
        "protocol": f.protocol or None,
        "activation": f.activation,
        "normalization": probe_normalization(f.model, f.normalization),
        "optimizer": f.optimizer,
        "dataset": request.dataset,
    } | report.record
    text = json.dumps(_finite(record), indent=1, allow_nan=False, default=_jsonable)
    print(f"{probe}: {f.model} / {f.rule}")
    print(report.table)
    json_path, png_path = write_results(f.out, probe, text, report.plot)
    print(f"wrote {json_path} and {png_path}")


def _finite(value):
    """JSON has no NaN or infinity: such numbers (e.g. an undefined interval) become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value):
    return float(value) if hasattr(value, "__float__") else str(value)


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
