"""train.py's run-axes flags and `--transfer_from`: tune a tiny proxy, train a target from it.

Everything runs in this process (train.py's own `main`, its absl flags defined for each
call and removed after it): one proxy sweep, a few tiny runs, and refusals that stop before
any training.
"""

import contextlib
import importlib
import io
import json
import math
import os
import shutil
import sys

import pytest
from absl import flags

from scaling_training import run_axes, transfer
from scaling_training.config import TrainConfig
from scaling_training.errors import ConfigError
from scaling_training.loop import train
from scaling_training.validation import validate

QUIET = ["--checkpoint_every=0", "--noplots", "--log_every=4", "--eval_every=8"]
PROXY = dict(
    model="mlp",
    width=16,
    base_width=16,
    depth=2,
    steps=8,
    batch_size=16,
    lrs="0.001,0.003,0.01",
    checkpoint_every=0,
    plots=False,
    log_every=4,
    eval_every=8,
)


# The probe CLI defines flags of the same names (--model, --schedule, ...) in this process
# when a test file of the same pytest worker runs `python -m scaling` in-process.
PROBE_FLAG_MODULES = ("scaling.__main__", "scaling.axes_flags")


@contextlib.contextmanager
def train_cli():
    """train.py imported with its flags, the probe CLI's set aside meanwhile; afterwards
    train's flags are removed and the probe CLI's put back."""
    aside = [(m, f) for m in PROBE_FLAG_MODULES for f in _defined(m)]
    for _, flag in aside:
        delattr(flags.FLAGS, flag.name)
    sys.modules.pop("train", None)
    try:
        yield importlib.import_module("train")
    finally:
        for flag in _defined("train"):
            delattr(flags.FLAGS, flag.name)
        sys.modules.pop("train", None)
        for module, flag in aside:
            flags.FLAGS[flag.name] = flag
            flags.FLAGS.register_flag_by_module(module, flag)


def _defined(module: str) -> list:
    """The flags `module` defined that are registered now (absl's by-module lists keep
    deleted ones)."""
    listed = flags.FLAGS.flags_by_module_dict().get(module, [])
    now = {f.name: f for f in listed if f.name in flags.FLAGS and flags.FLAGS[f.name] is f}
    return list(now.values())


def run_cli(*args: str) -> tuple[int, str, str]:
    """(status, stdout, stderr) of `train.py args` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    with train_cli() as cli, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            flags.FLAGS.unparse_flags()
            cli.main(cli.parse_flags(["train.py", *args]))
        except SystemExit as e:
            status = e.code
        flags.FLAGS.unparse_flags()
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("proxy") / "sweep")
    train(TrainConfig.from_flags(**PROXY, workdir=workdir), echo=lambda _: None)
    return workdir


def _json(path):
    with open(path) as f:
        return json.load(f)


def _final_train_loss(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r["train_loss"] for r in rows if "train_loss" in r][-1]


def test_target_trains_at_the_derived_lr_and_prints_one_line_per_axis(proxy, tmp_path):
    best = _json(os.path.join(proxy, "sweep.json"))["best_lr"]
    target = str(tmp_path / "target")
    status, out, err = run_cli(
        *QUIET,
        f"--transfer_from={proxy}",
        "--width=32",
        "--steps=16",
        "--batch_size=32",
        "--horizon_beta=0.3",
        "--batch_lr_scaling=family",
        "--batch_beta2",
        "--decay_timescale",
        f"--workdir={target}",
    )
    assert status == 0, err
    record = _json(os.path.join(target, "config.json"))
    assert record["lr"] == best and record["transfer_from"] == proxy
    assert (record["base_steps"], record["base_batch_size"], record["base_width"]) == (8, 16, 16)
    assert record["weight_decay"] == 0.5  # the proxy's (adamw's default)
    lr = best * 2**-0.3 * 2**0.5
    decay = 0.5 / 2 / (2**-0.3 * 2**0.5)  # lr x wd x steps fixed
    beta2 = 0.999**2
    for line in (
        f"transfer from {proxy}: lr {best:g}",
        "  width 16 -> 32: rule mup's per-layer multipliers from --base_width=16",
        "  depth 2 -> 2: same",
        f"  steps 8 -> 16 (x2): horizon_lr(0.3): lr x {2**-0.3:.4g}",
        f"  batch 16 -> 32 (x2): batch_lr_by_family: lr x {2**0.5:.4g}; "
        f"beta2_half_life(0.95,0.9999): beta2 0.999 -> {beta2:.6g}",
        f"  => lr {best:.4g} -> {lr:.4g}, weight decay 0.5 -> {decay:.4g}, beta2 0.999 -> "
        f"{beta2:.6g}",
    ):
        assert line in out, out
    # The same run written out by hand: the same training (up to float32 rounding of lr).
    direct = str(tmp_path / "direct")
    status, _, err = run_cli(
        *QUIET,
        "--width=32",
        "--base_width=16",
        "--depth=2",
        "--steps=16",
        "--batch_size=32",
        f"--lr={lr!r}",
        f"--weight_decay={decay!r}",
        f"--beta2={beta2!r}",
        f"--workdir={direct}",
    )
    assert status == 0, err
    assert _final_train_loss(target) == pytest.approx(_final_train_loss(direct), rel=1e-4)


def test_without_corrections_the_global_lr_carries_over_unchanged(proxy, tmp_path):
    best = _json(os.path.join(proxy, "sweep.json"))["best_lr"]
    target = str(tmp_path / "plain")
    status, out, err = run_cli(
        *QUIET, f"--transfer_from={proxy}", "--steps=16", f"--workdir={target}"
    )
    assert status == 0, err
    assert "  steps 8 -> 16 (x2): no correction (lr x 1)" in out
    assert f"  => lr {best:.4g} -> {best:.4g}, weight decay 0.5 -> 0.5" in out
    direct = str(tmp_path / "direct")
    status, _, err = run_cli(
        *QUIET, "--width=16", "--depth=2", "--steps=16", "--batch_size=16", f"--lr={best!r}",
        f"--workdir={direct}",
    )  # fmt: skip
    assert status == 0, err
    assert _final_train_loss(target) == _final_train_loss(direct)  # bit for bit


def test_a_json_of_tuned_values_is_a_proxy(tmp_path):
    tuned = tmp_path / "tuned.json"
    values = {"lr": 0.004, "weight_decay": 0.1, "model": "mlp", "optimizer": "adamw"}
    values |= {"dataset": "mnist1d", "steps": 4, "batch_size": 8, "width": 8, "base_width": 8}
    tuned.write_text(json.dumps(values))
    target = str(tmp_path / "t")
    status, out, err = run_cli(
        *QUIET, f"--transfer_from={tuned}", "--width=16", "--steps=8", "--depth=2",
        "--horizon_beta=0.5", f"--workdir={target}",
    )  # fmt: skip
    assert status == 0, err
    record = _json(os.path.join(target, "config.json"))
    assert (record["lr"], record["weight_decay"], record["base_steps"]) == (0.004, 0.1, 4)
    assert f"=> lr 0.004 -> {0.004 * 2**-0.5:.4g}" in out


def test_no_correction_is_applied_unless_chosen(tmp_path):
    """Every correction stays opt-in under --transfer_from: the measured exponents differ
    between the MLP and the lm (README, "Other axes"), so none is a safe default."""
    tuned = tmp_path / "tuned.json"
    values = {"lr": 0.004, "weight_decay": 0.1, "model": "mlp", "optimizer": "adamw"}
    values |= {"dataset": "mnist1d", "steps": 8, "batch_size": 16, "width": 16, "base_width": 16}
    tuned.write_text(json.dumps(values))
    given = {"transfer_from", "depth", "steps", "batch_size"}
    from scaling_training.config import FLAG_DEFAULTS

    values = FLAG_DEFAULTS | dict(transfer_from=str(tuned), depth=2, steps=64, batch_size=128)
    config = validate(TrainConfig.from_flags(**transfer.resolve(values, given)))
    assert run_axes.run_scales(config) == run_axes.axes.RunScales()
    lines = transfer.describe(config)
    assert "  steps 8 -> 64 (x8): no correction (lr x 1)" in lines
    assert "  batch 16 -> 128 (x8): no correction (lr x 1)" in lines
    assert "  => lr 0.004 -> 0.004, weight decay 0.1 -> 0.1" in lines


def _unfinished(proxy, tmp_path):
    where = tmp_path / "unfinished"
    where.mkdir()
    shutil.copy(os.path.join(proxy, "config.json"), where / "config.json")
    return str(where)


def _all_diverged(proxy, tmp_path):
    where = tmp_path / "diverged"
    shutil.copytree(proxy, where)
    summary = _json(where / "sweep.json") | {"best_lr": None}
    (where / "sweep.json").write_text(json.dumps(summary))
    return str(where)


def _single_run(proxy, tmp_path):
    where = tmp_path / "single"
    where.mkdir()
    record = _json(os.path.join(proxy, "config.json"))
    record.pop("sweep_lrs")
    (where / "config.json").write_text(json.dumps(record))
    return str(where)


def _json_file(text):
    def make(proxy, tmp_path):
        path = tmp_path / "tuned.json"
        path.write_text(text)
        return str(path)

    return make


REFUSALS = [
    ("missing", lambda p, t: str(t / "nowhere"), [], "--transfer_from: no such file"),
    ("empty_folder", lambda p, t: str(t), [], "not a run's workdir"),
    ("single_run", _single_run, [], "is a single run, not a sweep"),
    ("unfinished", _unfinished, [], "is unfinished (no sweep.json yet)"),
    ("all_diverged", _all_diverged, [], "diverged: nothing to transfer"),
    ("other_model", None, ["--model=cnn1d"], "--model: the proxy was tuned with model 'mlp'"),
    ("other_dataset", None, ["--dataset=digits"], "--dataset: the proxy was tuned with"),
    ("other_optimizer", None, ["--optimizer=sgd"], "--optimizer: the proxy was tuned with adamw"),
    ("other_rule", None, ["--rule=sp"], "--rule: the proxy was tuned with rule 'mup'"),
    ("lr_given", None, ["--lr=0.1"], "--lr: --transfer_from sets it"),
    ("weight_decay_given", None, ["--weight_decay=0.1"], "--weight_decay: --transfer_from"),
    ("sweep_given", None, ["--lrs=0.1,0.2"], "--lrs: --transfer_from sets it"),
    ("base_width_moved", None, ["--base_width=8"], "--base_width: the proxy's lr is the one"),
    ("other_decay_mode", None, ["--weight_decay_mode=independent"], "--weight_decay_mode"),
    ("json_garbage", _json_file("{not json"), [], "cannot read"),
    ("json_not_object", _json_file("[1, 2]"), [], "must hold a JSON object"),
    ("json_incomplete", _json_file('{"lr": 0.1}'), [], "lacks model, optimizer, dataset"),
    (
        "json_bad_type",
        _json_file(
            '{"lr": 0.1, "model": "mlp", "optimizer": "adam", "dataset": "mnist1d", '
            '"steps": "ten", "batch_size": 8}'
        ),
        [],
        "steps = 'ten' is not a valid value",
    ),
    (
        "json_zero_steps",
        _json_file(
            '{"lr": 0.1, "model": "mlp", "optimizer": "adam", "dataset": "mnist1d", '
            '"steps": 0, "batch_size": 8}'
        ),
        [],
        "steps = 0 is not a valid value",
    ),
    (
        "json_unknown_key",
        _json_file(
            '{"lr": 0.1, "model": "mlp", "optimizer": "adam", "dataset": "mnist1d", '
            '"steps": 4, "batch_size": 8, "learning_rate": 1}'
        ),
        [],
        "unknown settings: learning_rate",
    ),
]


@pytest.mark.parametrize(
    "make,args,message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_what_cannot_be_transferred_is_one_line_status_2_nothing_written(
    proxy, tmp_path, make, args, message
):
    source = make(proxy, tmp_path) if make else proxy
    target = tmp_path / "target"
    status, _, err = run_cli(*QUIET, f"--transfer_from={source}", *args, f"--workdir={target}")
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert not target.exists()


# -- the run-axes flags alone ----------------------------------------------------------------

BASE = dict(width=16, base_width=16, depth=2, steps=8, batch_size=16, checkpoint_every=0)
BAD_FLAGS = [
    (dict(weight_decay_mode="lr"), "weight_decay_mode"),
    (dict(weight_decay_width="inverse_width"), "weight_decay_width"),  # coupled has no 1/n
    (dict(weight_decay_mode="independent"), "weight_decay_mode"),  # adamw's default is coupled
    (dict(weight_decay_mode="independent", weight_decay=1e-4, weight_decay_width="completep"),
     "weight_decay_width"),
    (dict(batch_lr_scaling="cubic", base_batch_size=8), "batch_lr_scaling"),
    (dict(batch_lr_scaling="sqrt"), "batch_lr_scaling"),  # no base batch
    (dict(horizon_beta=0.3), "horizon_beta"),  # no base steps
    (dict(horizon_beta=math.nan, base_steps=4), "horizon_beta"),
    (dict(base_steps=-1), "base_steps"),
    (dict(base_batch_size=-4), "base_batch_size"),
    (dict(batch_beta2=True), "batch_beta2"),
    (dict(batch_beta2=True, base_batch_size=8, optimizer="sgd"), "batch_beta2"),
    (dict(beta2=1.0), "beta2"),
    (dict(beta2=0.99, optimizer="lion"), "beta2"),
    (dict(decay_timescale=True), "decay_timescale"),
    (dict(transfer_from="proxy"), "transfer_from"),  # not through transfer.resolve
    (dict(decay_timescale=True, base_steps=4, optimizer="adam"), "decay_timescale"),  # wd 0
]  # fmt: skip


@pytest.mark.parametrize("changes,flag", BAD_FLAGS, ids=[f"{c}" for c, _ in BAD_FLAGS])
def test_bad_run_axes_flags_name_the_flag(changes, flag):
    with pytest.raises(ConfigError) as caught:
        validate(TrainConfig.from_flags(**BASE, **changes))
    assert caught.value.flag == flag


def test_bad_flag_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    target = tmp_path / "w"
    status, _, err = run_cli(*QUIET, "--horizon_beta=0.3", f"--workdir={target}")
    assert status == 2 and err.count("\n") == 1 and "--horizon_beta" in err
    assert not target.exists()


def test_default_flags_give_the_plain_optimizer_arguments():
    config = validate(TrainConfig.from_flags(**BASE))
    assert run_axes.describe(config) == []
    assert run_axes.run_rule(config).transforms == ()
    assert run_axes.run_scales(config) == run_axes.axes.RunScales()


def test_flags_select_the_formulas():
    config = validate(
        TrainConfig.from_flags(
            **BASE | dict(steps=32, batch_size=64),
            base_steps=8,
            base_batch_size=16,
            horizon_beta=0.5,
            batch_lr_scaling="linear",
            optimizer="sgd",
            weight_decay=0.01,
            weight_decay_mode="independent",
            decay_timescale=True,
        )
    )
    scales = run_axes.run_scales(config)
    assert scales.lr == pytest.approx(4**-0.5 * 4)
    assert scales.weight_decay == pytest.approx(1 / 4)  # independent: wd x steps fixed
    assert [t.__name__ for t in run_axes.run_rule(config).transforms] == [
        "horizon_lr(0.5)",
        "batch_lr(1)",
        "decay_timescale(0)",
    ]
    lines = run_axes.describe(config)
    assert (
        "  weight decay: independent, width scaling constant; decay_timescale(0): wd x 0.25"
        in lines
    )


def test_independent_decay_is_coupled_decay_divided_by_the_lr(tmp_path):
    """Decay per step: independent wd = coupled lr x (wd / lr); the runs agree."""
    losses = {}
    lr, decay = 0.05, 0.02
    for mode, value in (("coupled", decay / lr), ("independent", decay)):
        config = TrainConfig.from_flags(
            **BASE, optimizer="sgd", lr=lr, weight_decay=value, weight_decay_mode=mode,
            plots=False, workdir=str(tmp_path / mode), log_every=4, eval_every=8,
        )  # fmt: skip
        assert not train(config, echo=lambda _: None).diverged
        losses[mode] = _final_train_loss(config.workdir)
    # (an independent decay that did nothing would miss coupled's 0.02 per step)
    assert losses["independent"] == pytest.approx(losses["coupled"], rel=1e-5)


def test_optimizer_arguments_apply_the_decay_width_scaling():
    import jax
    from flax import nnx

    import rules
    import zoo

    settings = BASE | dict(width=64, weight_decay_width="constant")
    config = validate(TrainConfig.from_flags(**settings))
    model_config = zoo.ModelConfig(
        input_shape=(40,), num_classes=10, width=64, depth=2, base_width=16, optimizer="adam"
    )
    # the scales come from the parameters' metadata: an abstract model (no init run)
    model = nnx.eval_shape(lambda: zoo.build("mlp", model_config, rules.get("mup"), nnx.Rngs(0)))
    scales, decay, options = run_axes.optimizer_arguments(config, model)
    assert (decay, options) == (0.5, {})
    leaves = jax.tree.leaves(scales, is_leaf=lambda x: isinstance(x, rules.Scales))
    assert all(s.weight_decay == s.lr for s in leaves)
    assert {s.weight_decay for s in leaves} == {1.0, 0.25}
    plain = validate(TrainConfig.from_flags(**BASE | dict(width=64)))
    assert run_axes.optimizer_arguments(plain, model)[0] == rules.param_scales(model)
