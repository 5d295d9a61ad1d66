"""train.py as a user runs it: files it writes, exit codes, one-line errors. Exit codes,
error lines and the first of each repeated pair run as real processes; finished runs whose
promise is their outputs run in one interpreter (tests/cli_cases.py)."""

import json
import os
import subprocess
import sys

import pytest
from cli_cases import one_line, run_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    "--width=32",
    "--base_width=16",
    "--depth=2",
    "--steps=20",
    "--eval_every=10",
    "--log_every=10",
    "--batch_size=32",
]


def run(*args, timeout=300):  # generous: a loaded 2-core machine took >120 s once
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


RULE_FILE = (
    "import rules\n"
    "def half_readout_lr(meta, scales):\n"
    "    return scales.replace(lr=scales.lr / 2) if meta.role == 'output' else scales\n"
    "rules.register(rules.compose(rules.mup, half_readout_lr, name='my_mup'))\n"
)
RESNET = ["--model=resnet", "--depth=8", "--width=4", "--steps=3", "--batch_size=8"]
RESNET += ["--checkpoint_every=0", "--plots=false"]  # neither is what its test is about
RESNET += ["--eval_every=3", "--log_every=3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The finished runs whose outputs the tests below check, and BAD_INPUTS' command lines.
    The short run's first run is a real process, as a user runs it, and its outputs are read
    before anything else runs; the rest, whose promise is their outputs or their one-line
    error, run in one interpreter (tests/cli_cases.py), JAX imported once for all: first
    BAD_INPUTS (each in its own folder), then the short run's command again, the resnet run
    and the user rule's."""
    folder = tmp_path_factory.mktemp("runs")
    short = folder / "short"
    first = run(*SMALL, "--rule=mean_field", f"--workdir={short}")
    assert first.returncode == 0, first.stderr
    outputs = {name: (short / name).read_text() for name in ("config.json", "metrics.jsonl")}
    outputs["summary.json"] = (short / "summary.json").read_text()
    (folder / "my_rules.py").write_text(RULE_FILE)
    user = [*SMALL, f"--rules_module={folder / 'my_rules.py'}", "--rule=my_mup"]
    user += ["--normalization=layer", "--dropout=0.2", f"--workdir={folder / 'user'}"]
    cases = {}
    for i, (args, _) in enumerate(BAD_INPUTS):
        case = folder / "bad_inputs" / str(i)
        case.mkdir(parents=True)
        cases[" ".join(args)] = ([*args, f"--workdir={case / 'w'}"], case / "w" / "metrics.jsonl")
    finished = {
        "again": [*SMALL, "--rule=mean_field", f"--workdir={short}"],
        "resnet": [*RESNET, f"--workdir={folder / 'resnet'}"],
        "user_rule": user,
    }
    cases |= {k: (v, folder / "unwatched") for k, v in finished.items()}
    results = run_cases("train", cases, folder)
    return {"folder": folder, "first": first, "first_outputs": outputs, **results}


def test_short_run_writes_config_metrics_and_summary_and_repeats_exactly(runs):
    workdir, proc, written = runs["folder"] / "short", runs["first"], runs["first_outputs"]
    assert "lr_multiplier" in proc.stdout and "hidden/0/kernel" in proc.stdout  # rule report
    assert "step 20/20" in proc.stdout and "steps/s" in proc.stdout  # progress
    config = json.loads(written["config.json"])
    assert config["rule"] == "mean_field" and config["width"] == 32 and config["steps"] == 20
    records = [json.loads(line) for line in written["metrics.jsonl"].splitlines()]
    train_steps = [r["step"] for r in records if "train_loss" in r]
    assert train_steps == list(range(1, 21))
    evals = [r for r in records if "test_accuracy" in r]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(0 <= r["test_accuracy"] <= 1 for r in evals)
    summary = json.loads(written["summary.json"])
    assert summary["steps_done"] == 20 and not summary["diverged"]
    assert summary["test_accuracy"] == evals[-1]["test_accuracy"]

    # The same command again (another process) keeps the first run's outputs, archived,
    # and, with the same seed, writes identical metrics (one pair of runs checks both).
    again = runs["again"]
    assert again["status"] == 0, again["stderr"]
    first = (workdir / "archive" / "1" / "metrics.jsonl").read_text()
    assert first == written["metrics.jsonl"]
    assert first == "\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n"
    assert (workdir / "metrics.jsonl").read_text() == first


def test_divergence_stops_with_status_3_and_is_recorded(tmp_path):
    workdir = tmp_path / "div"
    proc = run(*SMALL, "--optimizer=sgd", "--lr=1e6", f"--workdir={workdir}")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: diverged") and "--lr" in proc.stderr
    last = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["diverged"] is True and last["train_loss"] is None and last["step"] >= 1
    assert json.loads((workdir / "summary.json").read_text())["diverged"] is True


# (args, words the error line must name). The command lines run in one interpreter
# (tests/cli_cases.py); the real-process tests here and in test_bad_inputs.py show the same.
BAD_INPUTS = [
    (["--model=transformer"], ["--model", "mlp"]),
    (["--rule=fancy"], ["--rule", "mup", "sp"]),
    (["--optimizer=lbfgs"], ["--optimizer", "adamw"]),
    (["--dataset=imagenet"], ["--dataset", "mnist1d"]),
    (["--activation=swish"], ["--activation", "relu"]),
    (["--depth=0"], ["--depth"]),
    (["--width=0"], ["--width"]),
    (["--width=32", "--base_width=64"], ["--base_width"]),
    (["--depth=2", "--base_depth=3"], ["--base_depth"]),
    (["--lr=0"], ["--lr"]),
    (["--lr=-1"], ["--lr"]),
    (["--steps=0"], ["--steps"]),
    (["--batch_size=100000"], ["--batch_size"]),
    (["--depth=abc"], ["--depth"]),
    (["--no_such_flag"], ["no_such_flag"]),
    (["--weight_decay=-1"], ["--weight_decay"]),
    (["--rule=depth_mup"], ["--rule", "residual"]),
    (["--rules_module=no_such_module_xyz"], ["--rules_module"]),
    (["extra"], ["unexpected"]),
    (["--model=resnet", "--depth=30"], ["--depth", "6n+2", "20, 26, 32"]),
    (["--model=resnet", "--depth=32", "--base_depth=10"], ["--base_depth", "6n+2"]),
    (["--normalization=group"], ["--normalization", "batch", "layer"]),
    (["--dropout=1"], ["--dropout", "[0, 1)"]),
    (["--dropout=-0.1"], ["--dropout"]),
    (["--kernel_size=0"], ["--kernel_size"]),
    (["--padding=reflect"], ["--padding", "zero", "circular"]),
    (["--schedule=step"], ["--schedule", "cosine", "rsqrt"]),
    (["--augment=crop"], ["--augment", "images", "--augment=none"]),  # mnist1d: 1-D
]


@pytest.mark.parametrize("args, names", BAD_INPUTS)
def test_bad_input_is_one_line_and_status_2(runs, args, names):
    result = runs[" ".join(args)]  # run with the finished runs (the `runs` fixture)
    line = one_line(result)
    assert line.startswith("error: "), line
    for name in names:
        assert name in line
    assert result["same"]  # no metrics.jsonl written


def test_unwritable_workdir_is_status_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run(f"--workdir={blocker / 'sub'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --workdir: cannot write")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"


def test_resnet_run_records_its_per_model_defaults(runs):
    workdir, result = runs["folder"] / "resnet", runs["resnet"]
    assert result["status"] == 0, result["stderr"]
    assert "stages/0/0/norm1/scale" in result["stdout"]  # norm parameters are in the rule report
    config = json.loads((workdir / "config.json").read_text())
    assert config["normalization"] == "batch" and config["dataset"] == "digits"
    assert config["base_width"] == 4 and config["base_depth"] == 8  # capped at the model's
    assert config["lr"] > 0 and config["steps"] == 3


def test_user_rule_from_a_file_is_found_by_name_with_layer_norm_and_dropout(runs):
    result, rule_file = runs["user_rule"], runs["folder"] / "my_rules.py"
    assert result["status"] == 0, result["stderr"]
    assert (
        "rule my_mup: he_init > mup_readout_init > mup_lr > mup_attention > half_readout_lr"
        in result["stdout"]
    )
    config = json.loads((runs["folder"] / "user" / "config.json").read_text())
    assert config["rules_module"] == str(rule_file)
    # the same run trains an MLP with layer norm and dropout (one process for both checks)
    assert "norms/0/scale" in result["stdout"]


def test_help_lists_models_and_rules_and_exits_0():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for text in ("--model", "resnet", "--rule", "completep", "--lrs", "--mesh", "members"):
        assert text in proc.stdout, text
    for flag in ("--schedule", "--warmup_steps", "--clip_norm", "--dtype", "--augment"):
        assert flag in proc.stdout, flag
