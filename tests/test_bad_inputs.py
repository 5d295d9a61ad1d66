"""Bad and hostile inputs to both CLIs: each is one line on stderr naming the flag, the
documented status, no traceback, and the workdir (or --out) byte-identical to before.

The command lines run in one process per CLI (tests/scripts/run_cli_cases.py calls each
CLI's own `main`), so JAX is imported twice, not once a case; a few run as real
subprocesses too (test_real_processes_agree).
"""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "scripts", "run_cli_cases.py")
sys.path.insert(0, os.path.dirname(RUNNER))
from run_cli_cases import tree_hash  # noqa: E402

SMALL = ["--width=16", "--base_width=8", "--depth=2", "--steps=4", "--batch_size=8"]

RULE_FILES = {
    "exit": "import sys\nsys.exit(0)\n",
    "raise": "raise RuntimeError('broken on purpose')\n",
    "negative_lr": (
        "import rules\n"
        "def flip(meta, scales):\n"
        "    return scales.replace(lr=-scales.lr)\n"
        "rules.register(rules.compose(rules.mup, flip, name='{name}'))\n"
    ),
    "nan_std": (
        "import rules\n"
        "def nan_init(meta, scales):\n"
        "    return scales.replace(init_std=float('nan'))\n"
        "rules.register(rules.compose(rules.sp, nan_init, name='{name}'))\n"
    ),
    "inf_multiplier": (
        "import rules\n"
        "def huge(meta, scales):\n"
        "    return scales.replace(multiplier=float('inf'))\n"
        "rules.register(rules.compose(rules.sp, huge, name='{name}'))\n"
    ),
    "adam_only": (  # an SGD and an Adam column, Muon taken as Adam: Muon's step scaled twice
        "import rules\n"
        "def lr(meta, scales):\n"
        "    if meta.optimizer != 'sgd' and meta.role == 'hidden':\n"
        "        return scales.replace(lr=scales.lr / meta.fan_in_multiplier)\n"
        "    return scales\n"
        "rules.register(rules.compose(rules.he_init, lr, name='{name}'))\n"
    ),
}

# (id, args, text the error line must contain (the flag), status). {work}: the case's
# workdir holding an earlier run; {file}: a plain file; {empty}: an empty folder;
# {rules:KIND}: a rules module of RULE_FILES; {closed}/{busy}: a closed / a listening port.
TRAIN_CASES = [
    ("mesh_without_data", ["--mesh=model:1"], "--mesh", 2),
    ("mesh_zero", ["--mesh=data:0"], "--mesh", 2),
    ("mesh_unknown_axis", ["--mesh=pipe:2"], "--mesh", 2),
    ("mesh_too_many_devices", ["--mesh=data:64"], "--mesh", 2),
    ("seed_negative", ["--seed=-1"], "--seed", 2),
    ("seed_beyond_int64", ["--seed=99999999999999999999999"], "--seed", 2),
    ("seed_overflow_with_seeds", ["--seed=4294967295", "--lrs=0.1,0.2", "--seeds=2"], "--seed", 2),
    ("steps_huge", ["--steps=1000000000000"], "--steps", 2),
    ("steps_too_many_chunks", ["--steps=1000000000"], "--steps", 2),
    ("lr_inf", ["--lr=inf"], "--lr", 2),
    ("lr_nan", ["--lr=nan"], "--lr", 2),
    ("lr_negative", ["--lr=-1"], "--lr", 2),
    ("weight_decay_nan", ["--weight_decay=nan"], "--weight_decay", 2),
    ("weight_decay_inf", ["--weight_decay=inf"], "--weight_decay", 2),
    ("weight_decay_negative", ["--weight_decay=-0.1"], "--weight_decay", 2),
    ("momentum_nan", ["--optimizer=momentum", "--momentum=nan"], "--momentum", 2),
    ("momentum_negative", ["--optimizer=momentum", "--momentum=-5"], "--momentum", 2),
    ("momentum_one", ["--momentum=1"], "--momentum", 2),
    ("dropout_nan", ["--dropout=nan"], "--dropout", 2),
    ("width_cannot_fit", ["--width=1000000000", "--base_width=8"], "--width", 2),
    ("depth_cannot_fit", ["--width=256", "--depth=100000000"], "--depth", 2),
    ("kernel_larger_than_input_1d", ["--model=cnn1d", "--kernel_size=41"], "--kernel_size", 2),
    ("kernel_larger_than_input_2d", ["--model=cnn2d", "--kernel_size=9"], "--kernel_size", 2),
    ("batch_larger_than_data", ["--batch_size=100000"], "--batch_size", 2),
    ("data_dir_is_a_file", ["--data_dir={file}"], "--data_dir", 2),
    ("data_dir_unprepared", ["--dataset=mnist", "--data_dir={empty}"], "--data_dir", 2),
    ("workdir_is_a_file", ["--workdir={file}"], "--workdir", 2),
    ("archive_is_a_file", ["--workdir={work_archive_file}"], "--workdir", 2),
    ("workdir_in_use", ["--workdir={work_locked}"], "pid 424242 on other-host", 2),
    ("num_processes_zero", ["--num_processes=0"], "--num_processes", 2),
    ("multi_host_without_coordinator", ["--num_processes=2"], "--coordinator_address", 2),
    ("process_id_too_big", ["--num_processes=2", "--process_id=2"], "--process_id", 2),
    ("process_id_negative", ["--num_processes=2", "--process_id=-1"], "--process_id", 2),
    (
        "coordinator_without_port",
        ["--num_processes=2", "--coordinator_address=localhost"],
        "--coordinator_address",
        2,
    ),
    (
        "coordinator_port_out_of_range",
        ["--num_processes=2", "--coordinator_address=localhost:99999"],
        "--coordinator_address",
        2,
    ),
    (
        "connect_timeout_zero",
        ["--num_processes=2", "--coordinator_address=localhost:1234", "--connect_timeout=0"],
        "--connect_timeout",
        2,
    ),
    (
        "coordinator_unreachable",
        [
            "--num_processes=2",
            "--process_id=1",
            "--coordinator_address=127.0.0.1:{closed}",
            "--connect_timeout=1",
        ],
        "--coordinator_address",
        2,
    ),
    (
        "other_process_never_joins",
        [
            "--num_processes=2",
            "--process_id=0",
            "--coordinator_address=127.0.0.1:{closed}",
            "--connect_timeout=1",
        ],
        "--num_processes",
        2,
    ),
    (
        "coordinator_port_busy",
        ["--num_processes=2", "--process_id=0", "--coordinator_address=127.0.0.1:{busy}"],
        "--coordinator_address",
        2,
    ),
    ("rules_module_exits", ["--rules_module={rules:exit}"], "--rules_module", 2),
    ("rules_module_raises", ["--rules_module={rules:raise}"], "--rules_module", 2),
    (
        "rule_negative_lr",
        ["--rules_module={rules:negative_lr}", "--rule={rule_name}"],
        "--rule",
        2,
    ),
    ("rule_nan_init_std", ["--rules_module={rules:nan_std}", "--rule={rule_name}"], "--rule", 2),
    (
        "rule_inf_multiplier",
        ["--rules_module={rules:inf_multiplier}", "--rule={rule_name}"],
        "--rule",
        2,
    ),
    (
        "rule_not_stated_for_muon",
        ["--optimizer=muon", "--rules_module={rules:adam_only}", "--rule={rule_name}"],
        "--rule",
        2,
    ),
    ("muon_without_hidden_matrices", ["--optimizer=muon", "--depth=1"], "--rule", 2),
    ("rule_needs_residual", ["--rule=depth_mup"], "--rule", 2),
    ("sweep_rule_needs_residual", ["--rule=depth_mup", "--lrs=0.1,0.2"], "--rule", 2),
    (
        "sweep_rule_negative_lr",
        ["--rules_module={rules:negative_lr}", "--rule={rule_name}", "--lrs=0.1,0.2"],
        "--rule",
        2,
    ),
    ("lrs_nan", ["--lrs=0.001,nan"], "--lrs", 2),
    ("lrs_inf", ["--lrs=0.001,inf"], "--lrs", 2),
    ("lrs_not_numbers", ["--lrs=a,b"], "--lrs", 2),
    ("lrs_repeat", ["--lrs=0.1,0.1"], "--lrs", 2),
    ("lrs_with_fsdp", ["--lrs=0.1,0.2", "--fsdp"], "--fsdp", 2),
    ("members_without_lrs", ["--mesh=members:1,data:1"], "--mesh", 2),
    ("members_not_dividing", ["--lrs=0.1,0.2", "--mesh=members:3,data:1"], "--mesh", 2),
    ("sweep_with_model_axis", ["--lrs=0.1,0.2", "--mesh=data:1,model:2"], "--mesh", 2),
    ("seeds_without_lrs", ["--seeds=2"], "--seeds", 2),
    ("seeds_zero", ["--lrs=0.1,0.2", "--seeds=0"], "--seeds", 2),
    ("keep_checkpoints_zero", ["--keep_checkpoints=0"], "--keep_checkpoints", 2),
    ("checkpoint_every_negative", ["--checkpoint_every=-1"], "--checkpoint_every", 2),
    ("eval_every_zero", ["--eval_every=0"], "--eval_every", 2),
    ("log_every_zero", ["--log_every=0"], "--log_every", 2),
    ("base_width_zero", ["--base_width=0"], "--base_width", 2),
    ("resnet_depth_not_6n_plus_2", ["--model=resnet", "--depth=21"], "--depth", 2),
    ("unknown_model", ["--model=transformer_xl"], "--model", 2),
    ("bad_integer", ["--steps=ten"], "--steps", 2),
    ("positional_argument", ["extra"], "unexpected", 2),
    ("horizon_without_base_steps", ["--horizon_beta=0.3"], "--horizon_beta", 2),
    # a huge exponent rounds the derived LR to 0 (longer run) or overflows (shorter run)
    ("horizon_lr_to_zero", ["--horizon_beta=1e308", "--base_steps=1"], "--horizon_beta", 2),
    (
        "horizon_lr_overflow",
        ["--horizon_beta=1e308", "--base_steps=100000"],
        "--horizon_beta",
        2,
    ),
    ("weight_decay_mode_unknown", ["--weight_decay_mode=lr"], "--weight_decay_mode", 2),
    ("transfer_from_empty_folder", ["--transfer_from={empty}"], "--transfer_from", 2),
    ("transfer_from_a_file", ["--transfer_from={file}"], "--transfer_from", 2),
    ("transfer_from_a_single_run", ["--transfer_from={work}"], "--transfer_from", 2),
]

OUT_ARGS = ["--widths=16,32", "--depths=2", "--seeds=1", "--base_width=16"]
SCALING_CASES = [
    ("out_is_a_file", ["coord", "--out={file}"], "--out", 2),
    ("out_empty", ["coord", "--out="], "--out", 2),
    ("out_archive_is_a_file", ["coord", "--out={out_archive_file}"], "--out", 2),
    ("dataset_unprepared", ["coord", "--dataset=mnist"], "--dataset", 2),
    ("dataset_unknown", ["coord", "--dataset=imagenet"], "--dataset", 2),
    ("steps_negative", ["coord", "--steps=-5"], "--steps", 2),
    ("steps_huge", ["transfer", "--steps=1000000000"], "--steps", 2),
    ("layers_not_a_regex", ["update", "--layers=["], "--layers", 2),
    ("threshold_nan", ["maxlr", "--threshold=nan"], "--threshold", 2),
    ("threshold_above_one", ["maxlr", "--threshold=2"], "--threshold", 2),
    ("threshold_zero", ["maxlr", "--threshold=0"], "--threshold", 2),
    ("lr_negative", ["coord", "--lr=-1"], "--lr", 2),
    ("lr_nan", ["coord", "--lr=nan"], "--lr", 2),
    ("lr_inf", ["coord", "--lr=inf"], "--lr", 2),
    ("lrs_nan", ["transfer", "--lrs=0.1,nan,1"], "--lrs", 2),
    ("lrs_negative", ["transfer", "--lrs=0.1,-1,1"], "--lrs", 2),
    ("lrs_not_numbers", ["maxlr", "--lrs=a,b"], "--lrs", 2),
    ("widths_not_integers", ["coord", "--widths=a,b"], "--widths", 2),
    ("widths_zero", ["coord", "--widths=0,16"], "--widths", 2),
    ("widths_cannot_fit", ["coord", "--widths=1000000000,2000000000"], "--widths", 2),
    ("seeds_zero", ["coord", "--seeds=0"], "--seeds", 2),
    ("rounds_zero", ["maxlr", "--rounds=0"], "--rounds", 2),
    ("batch_size_zero", ["transfer", "--batch_size=0"], "--batch_size", 2),
    ("base_width_negative", ["coord", "--base_width=-1"], "--base_width", 2),  # 0 = each width
    ("base_depth_negative", ["coord", "--base_depth=-1"], "--base_depth", 2),
    ("unknown_rule", ["coord", "--rule=fancy"], "--rule", 2),
    ("unknown_model", ["coord", "--model=nope"], "--model", 2),
    ("unknown_activation", ["coord", "--activation=swish"], "--activation", 2),
    ("unknown_optimizer", ["coord", "--optimizer=lbfgs"], "--optimizer", 2),
    ("update_with_muon", ["update", "--optimizer=muon"], "--optimizer", 2),
    ("rules_module_exits", ["coord", "--rules_module={rules:exit}"], "--rules_module", 2),
    (
        "rule_negative_lr",
        ["update", "--rules_module={rules:negative_lr}", "--rule={rule_name}"],
        "--rule",
        2,
    ),
    ("rule_needs_residual", ["coord", "--rule=depth_mup"], "--rule", 2),
    ("one_width_only", ["coord", "--widths=64"], "--widths", 2),
    ("unknown_probe", ["nope"], "give one probe", 2),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _earlier_run(folder) -> None:
    """What an earlier finished run left (its bytes must survive every failed run)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"note": "an earlier run"}\n')
    (folder / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.3}\n')
    (folder / "summary.json").write_text('{"steps_done": 1}\n')
    (folder / "coord.json").write_text('{"probe": "coord", "earlier": true}\n')


def _case_dict(cli, case_id, args, tmp, ports) -> dict:
    base = tmp / cli / case_id
    work = base / "work"
    _earlier_run(work)
    (base / "afile").write_text("a plain file\n")
    (base / "empty").mkdir()
    values = {
        "work": str(work),
        "file": str(base / "afile"),
        "empty": str(base / "empty"),
        "closed": str(ports["closed"]),
        "busy": str(ports["busy"]),
        "rule_name": f"rule_{case_id}",
        "work_archive_file": str(work),
        "out_archive_file": str(work),
        "work_locked": str(work),
    }
    tree = str(work)
    if case_id.endswith("archive_is_a_file"):
        (work / "archive").write_text("not a folder\n")
    hold = str(work) if case_id == "workdir_in_use" else None
    filled = []
    for arg in args:
        for kind, text in RULE_FILES.items():
            if "{rules:" + kind + "}" in arg:
                path = base / f"rules_{case_id}.py"
                path.write_text(text.replace("{name}", values["rule_name"]))
                arg = arg.replace("{rules:" + kind + "}", str(path))
        filled.append(arg.format(**values))
    if any(a.startswith(("--workdir=", "--out=")) for a in filled):
        target = next(a.split("=", 1)[1] for a in filled if a.startswith(("--workdir=", "--out=")))
        tree = target or tree
    elif cli == "train":
        filled += [f"--workdir={work}"]
    else:
        filled += [f"--out={work}"]
    if cli == "train":
        filled = SMALL + filled if not any("--width=" in a for a in filled) else filled
    else:
        filled = filled[:1] + OUT_ARGS + filled[1:]
    return {"id": case_id, "args": filled, "tree": tree, "hold_lock": hold}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    ports = {"closed": _free_port(), "busy": busy.getsockname()[1]}
    env = os.environ | {"TFDS_DATA_DIR": str(tmp / "no_tfds"), "JAX_PLATFORMS": "cpu"}
    procs = {}
    for cli, cases in (("train", TRAIN_CASES), ("scaling", SCALING_CASES)):
        dicts = [_case_dict(cli, c[0], c[1], tmp, ports) for c in cases]
        case_file, out_file = tmp / f"{cli}_cases.json", tmp / f"{cli}_results.json"
        case_file.write_text(json.dumps(dicts))
        procs[cli] = (
            subprocess.Popen(
                [sys.executable, RUNNER, cli, str(case_file), str(out_file)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
            out_file,
        )
    found = {}
    for cli, (proc, out_file) in procs.items():
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
        found[cli] = json.loads(out_file.read_text())
    busy.close()
    return found


def _check(result: dict, must_contain: str, status: int) -> None:
    lines = result["stderr"].strip().splitlines()
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert result["status"] == status, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    assert must_contain in lines[0], lines[0]
    assert result["same"], "the workdir changed"


@pytest.mark.parametrize(
    "case_id, args, flag, status", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES]
)
def test_train_bad_input(results, case_id, args, flag, status):
    _check(results["train"][case_id], flag, status)


@pytest.mark.parametrize(
    "case_id, args, flag, status", SCALING_CASES, ids=[c[0] for c in SCALING_CASES]
)
def test_scaling_bad_input(results, case_id, args, flag, status):
    _check(results["scaling"][case_id], flag, status)


def test_table_is_large_enough():
    assert len(TRAIN_CASES) + len(SCALING_CASES) >= 60


def test_real_processes_agree(tmp_path):
    """The in-process runner shows what a user sees: the same cases as real processes."""
    ports = {"closed": _free_port(), "busy": 0}
    chosen = [
        ("train", dict((c[0], c) for c in TRAIN_CASES)["seed_negative"]),
        ("train", dict((c[0], c) for c in TRAIN_CASES)["rules_module_exits"]),
        ("scaling", dict((c[0], c) for c in SCALING_CASES)["out_is_a_file"]),
    ]
    for cli, case in chosen:
        spec = _case_dict(cli, case[0], case[1], tmp_path, ports)
        command = ["train.py"] if cli == "train" else ["-m", "scaling"]
        before = tree_hash(spec["tree"])
        proc = subprocess.run(
            [sys.executable, *command, *spec["args"]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        same = tree_hash(spec["tree"]) == before
        _check({"status": proc.returncode, "stderr": proc.stderr, "same": same}, case[2], case[3])
