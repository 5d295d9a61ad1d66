"""Hostile inputs: planted links and special files, damaged checkpoints, model x
dataset pairs, garbled files read back on resume. Each case asserts its status, one line on
stderr and no traceback, the workdir byte-identical to before (links hashed as links), and
nothing outside it changed (a sibling folder holding every link's target, hashed before and
after).

The command lines run in one process per CLI (tests/scripts/run_cli_cases.py), both CLIs at
once; the checkpoint cases copy one unfinished run trained in this process.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from cli_cases import LIMITED

from scaling_training import checkpoint as ck
from scaling_training import pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "scripts", "run_cli_cases.py")
sys.path.insert(0, os.path.dirname(RUNNER))
from run_cli_cases import tree_hash  # noqa: E402

SETTINGS = dict(
    width=8, base_width=8, depth=1, batch_size=8, steps=4, checkpoint_every=2, plots=False
)  # fmt: skip
FLAGS = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]
PROBE = ["coord", "--widths=16,32", "--depths=2", "--seeds=1", "--base_width=16"]


def _earlier_run(work) -> None:
    """An earlier finished run's outputs (a failed run must leave them as they are)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text('{"model": "mlp"}\n')
    (work / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.3}\n')
    (work / "summary.json").write_text('{"steps_done": 1}\n')
    (work / "coord.json").write_text('{"probe": "coord"}\n')


def _outside(base):
    """The sibling folder every link points into: a file, a folder, and a missing name."""
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "victim.txt").write_text("precious\n")
    (outside / "folder" / "inside.txt").write_text("also precious\n")
    return {"file": outside / "victim.txt", "dir": outside / "folder", "missing": outside / "new"}


# -- 1. links and special files in an output folder ------------------------------------------

# (id, entry planted in the workdir (may be nested), what it is: a link to the outside file,
# folder or a missing name there, or a FIFO)
TRAIN_PLANTS = [
    ("lock_link", ".lock", "file"),
    ("lock_dangling", ".lock", "missing"),
    ("config_link", "config.json", "file"),
    ("config_tmp_link", "config.json.tmp", "missing"),
    ("summary_tmp_link", "summary.json.tmp", "file"),
    ("metrics_link", "metrics.jsonl", "file"),
    ("metrics_dangling", "metrics.jsonl", "missing"),
    ("plot_tmp_link", "metrics.png.tmp.png", "missing"),
    ("checkpoints_link", "checkpoints", "dir"),
    ("archive_link", "archive", "dir"),
    ("tensorboard_link", "tensorboard", "dir"),
    ("nested_archive_link", "archive/1/config.json", "file"),
    ("nested_checkpoint_link", "checkpoints/2", "dir"),
    ("unrelated_link", "notes.txt", "file"),
    ("metrics_fifo", "metrics.jsonl", "fifo"),
    ("lock_fifo", ".lock", "fifo"),
]
PROBE_PLANTS = [
    ("json_link", "coord.json", "file"),
    ("png_dangling", "coord.png", "missing"),
    ("json_tmp_link", "coord.json.tmp", "missing"),
    ("archive_link", "archive", "dir"),
    ("json_fifo", "coord.json", "fifo"),
]


def _plant(work, entry: str, what: str, targets) -> None:
    path = work / entry
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # the earlier run's file: the link takes its place
    if what == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(targets[what], path)


# -- 2. damaged checkpoints --------------------------------------------------------------


def _flip(path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def _data_file(step_dir) -> str:
    for here, _, files in os.walk(step_dir):
        if os.path.basename(here) == "d" and files:
            return os.path.join(here, sorted(files)[0])
    raise AssertionError("no data file")


def _rewrite_meta(step_dir, change) -> None:
    """Hand-edit the meta and re-seal the manifest (a forger who knows the format)."""
    path = os.path.join(step_dir, "meta", "metadata")
    with open(path) as f:
        meta = json.load(f)
    with open(path, "w") as f:
        json.dump(change(meta), f)
    ck.write_manifest(str(step_dir))


def _truncate(path) -> None:
    with open(path, "r+b") as f:
        f.truncate(f.seek(0, 2) // 2)


CHECKPOINT_DAMAGE = {
    "flipped_data_bit": lambda d: _flip(_data_file(d), 0, 3),
    "flipped_meta_bit": lambda d: _flip(d / "meta" / "metadata", 5, 1),
    "truncated_metadata": lambda d: _truncate(d / "state" / "_METADATA"),
    "no_manifest": lambda d: os.remove(d / ck.MANIFEST),
    "manifest_not_ours": lambda d: (d / ck.MANIFEST).write_text("[1, 2]\n"),
    "extra_file": lambda d: (d / "state" / "planted").write_text("x"),
    "removed_file": lambda d: os.remove(_data_file(d)),
    "meta_step_string": lambda d: _rewrite_meta(d, lambda m: m | {"step": "2"}),
    "meta_steps_string": lambda d: _rewrite_meta(
        d, lambda m: m | {"config": m["config"] | {"steps": "4"}}
    ),
    "meta_config_list": lambda d: _rewrite_meta(d, lambda m: m | {"config": [1]}),
    "meta_nested_value": lambda d: _rewrite_meta(
        d, lambda m: m | {"config": m["config"] | {"lr": {"a": 1}}}
    ),
}
CHECKPOINT_TEXT = {
    "meta_step_string": "meta",
    "meta_steps_string": "meta",
    "meta_config_list": "meta",
    "meta_nested_value": "meta",
}

# -- 3. model x dataset pairs that cannot train (CLI cases; all pairs: test_every_pair) -------

BAD_PAIRS = [
    ("mlp", "grammar_text"),
    ("resnet", "mnist1d"),
    ("cnn1d", "digits"),
    ("cnn2d", "teacher"),
    ("lm", "mnist1d"),
    ("resmlp", "grammar_text"),
]


# -- 5. users' code (--rules_module, probe models) ------------------------------------------

# id -> (file text, the rule the run asks for, flag named); the error names the file and line
USER_CODE = {
    "transform_returns_none": (
        "import rules\ndef bad(meta, scales):\n    return None\n"
        "rules.register(rules.compose(rules.mup, bad, name='{name}'))\n",
        "--rule",
    ),
    "transform_raises": (
        "import rules\ndef bad(meta, scales):\n    return 1 / 0\n"
        "rules.register(rules.compose(rules.mup, bad, name='{name}'))\n",
        "--rule",
    ),
    "function_registered": (
        "import rules\nrules.register(lambda meta, scales: scales, '{name}')\n",
        "--rules_module",
    ),
    "multiplier_overflows": (
        "import rules\ndef big(meta, scales):\n    return scales.replace(multiplier=1e300)\n"
        "rules.register(rules.compose(rules.mup, big, name='{name}'))\n",
        "--rule",
    ),
    "lr_overflows": (
        "import rules\ndef big(meta, scales):\n    return scales.replace(lr=scales.lr * 1e40)\n"
        "rules.register(rules.compose(rules.mup, big, name='{name}'))\n",
        "--rule",
    ),
    "base_exception_on_import": (
        "class Stop(BaseException):\n    pass\nraise Stop('stop\\nhere')\n",
        "--rules_module",
    ),
    "keyboard_interrupt_on_import": ("raise KeyboardInterrupt\n", "--rules_module"),
}
USER_LINE = {  # the line each file's error must name
    "transform_returns_none": 2,
    "transform_raises": 3,
    "function_registered": 2,
    "base_exception_on_import": 3,
    "keyboard_interrupt_on_import": 1,
}
FACTORY_RAISES = "def build(width, depth, seed, rule, optimizer):\n    raise RuntimeError('no')\n"

# -- 5, 6. more command lines: (id, cli, args ({work}, {base}: the case's folders), texts)

MORE_CASES = [
    ("data_dir_pseudo_fs", "train", [*FLAGS, "--data_dir=/proc/self"], ["--data_dir"]),
    ("foreign_config", "train", [*FLAGS], ["--workdir", "config.json", "not an output"]),
    ("newline_in_value", "train", [*FLAGS, "--rule=mu\np"], ["--rule", "mu\\np"]),
    ("probe_out_unwritable", "scaling", [*PROBE[:-1], "--out=/proc/self/x"], ["--out"]),
    ("probe_foreign_result", "scaling", [*PROBE], ["--out", "coord.json", "not a result"]),
    (
        "probe_seeds_forever",
        "scaling",
        ["transfer", "--widths=64,128", "--depths=2", "--seeds=1000000000"],
        ["--seeds", "days"],
    ),
    (
        "probe_seeds_blamed_not_width",
        "scaling",
        ["transfer", "--lrs=1e-3", "--seeds=1000000", "--widths=16,32", "--depths=1"],
        ["--seeds"],
    ),
    (
        "probe_factory_raises",
        "scaling",
        [*PROBE, "--model={base}/factory.py:build"],
        ["factory.py:2"],
    ),
    ("probe_newline_in_value", "scaling", [*PROBE, "--rule=mu\np"], ["--rule", "mu\\np"]),
    (
        "probe_rules_module_base_exception",
        "scaling",
        [*PROBE, "--rules_module={base}/stop.py"],
        ["--rules_module", "stop.py:1"],
    ),
]


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    """A run of 4 steps whose checkpoint of step 4 is gone: it resumes from step 2."""
    from scaling_training.config import TrainConfig
    from scaling_training.loop import train

    work = tmp_path_factory.mktemp("unfinished") / "work"
    train(TrainConfig.from_flags(**SETTINGS, workdir=str(work)), echo=lambda _: None)
    shutil.rmtree(work / "checkpoints" / "4")
    return work


@pytest.fixture(scope="module")
def results(tmp_path_factory, unfinished):
    """id -> {"status", "stderr", "same" (workdir), "outside_same", "text", "want"}."""
    tmp = tmp_path_factory.mktemp("hostile")
    tables = {"train": [], "scaling": []}
    expect = {}
    for cli, plants in (("train", TRAIN_PLANTS), ("scaling", PROBE_PLANTS)):
        for case_id, entry, what in plants:
            base = tmp / f"{cli}_{case_id}"
            targets = _outside(base)
            work = base / "work"
            _earlier_run(work)
            _plant(work, entry, what, targets)
            kind = "FIFO" if what == "fifo" else "symbolic link"
            args = [*FLAGS, f"--workdir={work}"] if cli == "train" else [*PROBE, f"--out={work}"]
            flag = "--workdir" if cli == "train" else "--out"
            tables[cli].append({"id": f"{cli}_{case_id}", "args": args, "tree": str(work)})
            expect[f"{cli}_{case_id}"] = (base / "outside", 2, [flag, kind])
    for case_id, damage in CHECKPOINT_DAMAGE.items():
        base = tmp / f"checkpoint_{case_id}"
        _outside(base)
        work = base / "work"
        shutil.copytree(unfinished, work)
        damage(work / "checkpoints" / "2")
        tables["train"].append(
            {"id": f"ck_{case_id}", "args": [*FLAGS, f"--workdir={work}"], "tree": str(work)}
        )
        text = CHECKPOINT_TEXT.get(case_id, ck.MANIFEST if "manifest" in case_id else "")
        expect[f"ck_{case_id}"] = (base / "outside", 2, ["step 2", text])
    for model, dataset in BAD_PAIRS:
        base = tmp / f"pair_{model}_{dataset}"
        _outside(base)
        work = base / "work"
        _earlier_run(work)
        args = [*FLAGS, f"--model={model}", f"--dataset={dataset}", f"--workdir={work}"]
        args = [a for a in args if not a.startswith(("--depth=", "--width=", "--base_width="))]
        case = f"pair_{model}_{dataset}"
        tables["train"].append({"id": case, "args": args, "tree": str(work)})
        expect[case] = (base / "outside", 2, ["--dataset", f"--model={model} needs"])
    for case_id, (text, flag) in USER_CODE.items():
        base = tmp / f"user_{case_id}"
        _outside(base)
        work = base / "work"
        _earlier_run(work)
        rule = f"hostile_{case_id}"
        module = base / f"{case_id}.py"
        module.write_text(text.replace("{name}", rule))
        args = [*FLAGS, f"--rules_module={module}", f"--workdir={work}"]
        args += [f"--rule={rule}"] if flag == "--rule" else []
        tables["train"].append({"id": f"user_{case_id}", "args": args, "tree": str(work)})
        where = f"{module}:{USER_LINE[case_id]}" if case_id in USER_LINE else "float32"
        expect[f"user_{case_id}"] = (base / "outside", 2, [flag, where])
    for case_id, cli, args, texts in MORE_CASES:
        base = tmp / f"more_{case_id}"
        _outside(base)
        work = base / "work"
        _earlier_run(work)
        (base / "factory.py").write_text(FACTORY_RAISES)
        (base / "stop.py").write_text("raise KeyboardInterrupt\n")
        if case_id == "foreign_config":
            (work / "config.json").write_text('{"my": "own settings"}\n')
        if case_id == "probe_foreign_result":
            (work / "coord.json").write_text('{"mine": true}\n')
        args = [a.replace("{base}", str(base)) for a in args]
        if not any(a.startswith("--out=") for a in args):
            args += [f"--workdir={work}"] if cli == "train" else [f"--out={work}"]
        tables[cli].append({"id": f"more_{case_id}", "args": args, "tree": str(work)})
        expect[f"more_{case_id}"] = (base / "outside", 2, texts)
    tables["scaling"].append({"id": "help", "args": ["--help"], "tree": str(tmp / "none")})
    before = {case: tree_hash(str(outside)) for case, (outside, *_) in expect.items()}
    procs = {}
    for cli, table in tables.items():
        (tmp / f"{cli}.json").write_text(json.dumps(table))
        procs[cli] = subprocess.Popen(
            [sys.executable, RUNNER, cli, str(tmp / f"{cli}.json"), str(tmp / f"{cli}.out")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=os.environ | {"JAX_PLATFORMS": "cpu", "TFDS_DATA_DIR": str(tmp / "no_tfds")},
        )  # fmt: skip
    found = {}
    for cli, proc in procs.items():
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
        found |= json.loads((tmp / f"{cli}.out").read_text())
    found["help"]["outside_same"] = True
    for case, (outside, status, texts) in expect.items():
        found[case] |= {
            "outside_same": tree_hash(str(outside)) == before[case],
            "want": (status, texts),
        }
    return found


def _check(result: dict) -> None:
    status, texts = result["want"]
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert result["status"] == status, result
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    for text in texts:
        assert text in lines[0], lines[0]
    assert result["same"], "the workdir changed"
    assert result["outside_same"], "a file outside the workdir changed"


def test_probes_help_exits_0(results):
    assert results["help"]["status"] == 0, results["help"]


ALL_IDS = (
    [f"user_{c}" for c in USER_CODE]
    + [f"more_{c[0]}" for c in MORE_CASES]
    + [f"train_{c[0]}" for c in TRAIN_PLANTS]
    + [f"scaling_{c[0]}" for c in PROBE_PLANTS]
    + [f"ck_{c}" for c in CHECKPOINT_DAMAGE]
    + [f"pair_{m}_{d}" for m, d in BAD_PAIRS]
)


@pytest.mark.parametrize("case_id", ALL_IDS)
def test_hostile_input_is_refused_and_touches_nothing(results, case_id):
    _check(results[case_id])


def test_every_bit_of_a_checkpoint_is_covered(unfinished, tmp_path):
    """A flipped bit at several offsets of every file of a saved checkpoint (the manifest
    included) is found; the intact checkpoint passes."""
    step_dir = tmp_path / "2"
    shutil.copytree(unfinished / "checkpoints" / "2", step_dir)
    assert ck.manifest_problem(str(step_dir)) is None
    files = [os.path.join(h, n) for h, _, names in os.walk(step_dir) for n in names]
    assert len(files) >= 8 and any(f.endswith(ck.MANIFEST) for f in files)
    flips = 0
    for path in files:
        size = os.path.getsize(path)
        for offset in sorted({0, size // 3, size // 2, 2 * size // 3, size - 1}):
            for bit in (0, 7):
                _flip(path, offset, bit)
                assert ck.manifest_problem(str(step_dir)) is not None, (path, offset, bit)
                _flip(path, offset, bit)
                flips += 1
    assert ck.manifest_problem(str(step_dir)) is None
    assert flips >= 60


def test_a_sealed_checkpoint_resumes(unfinished, tmp_path):
    """The control of the damage cases: the intact copy resumes from step 2 and finishes."""
    from scaling_training.config import TrainConfig
    from scaling_training.loop import train

    work = tmp_path / "work"
    shutil.copytree(unfinished, work)
    lines = []
    result = train(TrainConfig.from_flags(**SETTINGS, workdir=str(work)), echo=lines.append)
    assert result.steps_done == 4 and not result.diverged
    assert any("resuming from the checkpoint of step 2" in line for line in lines)
    assert ck.manifest_problem(str(work / "checkpoints" / "4")) is None


# One dataset standing for each input kind (and cifar10 for images of 3 channels).
REPRESENTATIVES = {
    "vector": ("mnist1d",),
    "image": ("digits", "cifar10"),
    "text": ("grammar_text",),
}


@functools.cache
def _load(name: str):
    """An offline dataset (windows of 16 tokens for text), loaded once for these tests."""
    import scaling_data as data

    return data.load(name, seq_len=16)


def _logits_fit(model: str, dataset_name: str) -> bool:
    """Ground truth: the model builds for the dataset's inputs and its logits match the
    labels (a class per example, or a token per position), traced abstractly."""
    import jax
    import numpy as np
    from flax import nnx

    import scaling_data as data
    from scaling_training import models
    from scaling_training.config import TrainConfig

    if dataset_name in data.TFDS_DATASETS:  # not prepared here: their image shape
        shape, classes = (32, 32, 3), data.TFDS_DATASETS[dataset_name][1]
        x, y = np.zeros((2, *shape), np.float32), np.zeros((2,), np.int32)
    else:
        dataset = _load(dataset_name)
        shape, classes = tuple(dataset.input_shape), dataset.num_classes
        x, y = dataset.x_train[:2], dataset.y_train[:2]
    config = TrainConfig.from_flags(
        model=model, dataset=dataset_name, width=8, base_width=8, seq_len=16
    )
    try:
        model = config.model_for(shape, classes)
        built = nnx.eval_shape(lambda: models.build(model, config.rule, 0))
        logits = nnx.eval_shape(lambda m, x: m(x), built, jax.numpy.asarray(x))
    except (ValueError, TypeError):
        return False
    return tuple(logits.shape) == tuple(np.shape(y)) + (classes,)


def test_input_kinds_are_the_datasets_own():
    """pairs.input_kind against the data: rank 1, rank 3 images, or token windows."""
    import scaling_data as data

    for name in data.names():
        kind = pairs.input_kind(name)
        if name in data.TFDS_DATASETS:  # images, by tfds's own feature (not prepared here)
            assert kind == "image"
            continue
        dataset = _load(name)
        rank = len(dataset.input_shape)
        actual = (
            "text" if isinstance(dataset, data.TextDataset) else {1: "vector", 3: "image"}[rank]
        )
        assert kind == actual, name


def test_every_pair_is_supported_or_refused_before_anything_moves():
    """validate() refuses (--dataset) exactly the pairs that cannot train, for every model
    and every dataset name; what trains is what builds and gives logits of the labels'
    shape (traced for one dataset of each input kind)."""
    import scaling_data as data
    import zoo
    from scaling_training.config import ConfigError, TrainConfig
    from scaling_training.validation import validate

    assert set(pairs.MODEL_INPUTS) == set(zoo.names())
    truth = {}
    for model in zoo.names():
        for kind, names in REPRESENTATIVES.items():
            fits = {_logits_fit(model, name) for name in names}
            assert len(fits) == 1, (model, kind)  # the kind decides, not the dataset
            truth[model, kind] = fits.pop()
    checked = 0
    for model in zoo.names():
        for dataset in data.names():
            config = TrainConfig.from_flags(model=model, dataset=dataset, width=8, base_width=8)
            try:
                validate(config)
                refused = None
            except ConfigError as e:
                refused = e
            fits = truth[model, pairs.input_kind(dataset)]
            assert (refused is None) == fits, (model, dataset, refused)
            if refused is not None:
                assert refused.flag == "dataset", (model, dataset, refused)
            checked += 1
    assert checked == len(zoo.names()) * len(data.names())


# -- files read back on resume, caches, data sources -------------------------------------


def test_foreign_metrics_lines_are_dropped_on_resume(tmp_path):
    from scaling_training import progress

    path = tmp_path / "metrics.jsonl"
    lines = [
        '{"step": 1, "train_loss": 2.0}',
        '{"step": "2", "train_loss": 1.9}',  # a string where a number belongs
        '["not", "a", "record"]',
        '{"train_loss": 1.8}',  # no step
        '{"step": 2, "train_loss": "low"}',
        "not json at all",
        '{"step": 3, "test_loss": 1.7, "diverged": false}',
        '{"step": 9, "train_loss": 1.0}',  # past the checkpoint: rewritten by the resumed run
    ]
    path.write_text("\n".join(lines) + '\n{"step": 10, "tra')  # and a torn tail
    assert progress.truncate_metrics(str(path), 3) == 5
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in kept] == [1, 3]


def test_offline_data_source_is_fixed_on_resume():
    from scaling_training.config import ConfigError

    saved = {"dataset": "mnist1d", "data_dir": ""}
    ck.check_same_source(saved, {"dataset": "mnist1d", "data_dir": ""}, "w")
    with pytest.raises(ConfigError, match="--data_dir: .*generated in memory"):
        ck.check_same_source(saved, {"dataset": "mnist1d", "data_dir": "/data"}, "w")
    with pytest.raises(ConfigError, match="--data_dir: .*tensorflow-datasets files"):
        ck.check_same_source({"dataset": "digits", "data_dir": "/a"}, {"dataset": "digits"}, "w")
    # a tfds set's prepared files may move
    ck.check_same_source({"dataset": "mnist", "data_dir": "/a"}, {"dataset": "mnist"}, "w")


def test_a_fifo_in_the_data_cache_never_blocks(tmp_path, monkeypatch):
    import numpy as np

    from scaling_data import sources

    fake = {
        "x": np.zeros((8, 40), np.float32),
        "y": np.arange(8) % 2,
        "x_test": np.zeros((4, 40), np.float32),
        "y_test": np.arange(4) % 2,
    }
    monkeypatch.setenv("SCALING_RULES_CACHE", str(tmp_path))
    monkeypatch.setattr(sources, "_generate_mnist1d", lambda: fake)
    monkeypatch.setattr(sources.importlib.metadata, "version", lambda _: "0")
    fifo = tmp_path / "mnist1d-0-standard.npz"
    os.mkfifo(fifo)
    dataset = sources.mnist1d()  # opening the FIFO for reading would block forever
    assert dataset.x_train.shape == (8, 40)
    assert fifo.is_fifo()


# -- real processes: signals, a full disk, a missing backend -----------------------------


def _one_line(proc, status: int, *texts: str) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


def test_full_disk_during_a_checkpoint_is_one_line(tmp_path):
    """A 5 kB file-size limit: config.json and metrics fit, the checkpoint's files do not."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, "5000", *FLAGS, f"--workdir={tmp_path / 'w'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env | {"JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    _one_line(proc, 4, "cannot write", "checkpoints", "rerun the same command to resume")


def test_missing_backend_is_one_line(tmp_path):
    env = os.environ | {"JAX_PLATFORMS": "nosuch"}
    proc = subprocess.run(
        [sys.executable, "train.py", *FLAGS, f"--workdir={tmp_path / 'w'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    _one_line(proc, 2, "JAX_PLATFORMS='nosuch'")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_run_cleanly(tmp_path, signum, status):
    """The signal arrives mid-run: one line, the lock gone, every checkpoint whole (its
    manifest verifies) and metrics.jsonl whole lines: what a rerun resumes from."""
    work = tmp_path / "w"
    args = [*FLAGS[:4], "--steps=100000", "--log_every=10", "--eval_every=100000"]
    args += ["--checkpoint_every=20", "--plots=false", f"--workdir={work}"]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=os.environ | {"JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    for line in proc.stdout:
        if " 50/100000" in line:
            break
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    proc.stderr = err
    _one_line(proc, status, signal.Signals(signum).name, "rerun the same command to resume")
    assert not (work / ".lock").exists()
    steps = sorted(int(s) for s in os.listdir(work / "checkpoints"))
    assert steps and all(
        ck.manifest_problem(str(work / "checkpoints" / str(s))) is None for s in steps
    )
    assert (work / "metrics.jsonl").read_text().endswith("\n")


def test_unreadable_prepared_data_is_a_data_dir_error(monkeypatch):
    """What the array_record reader raises on garbage files (checked by hand with flipped
    bytes in a prepared digits_offline; preparing one here would take too long)."""
    import scaling_data as data
    from scaling_training.config import ConfigError, TrainConfig
    from scaling_training.loop import load_dataset

    def garbage(*_, **__):
        raise RuntimeError("Corrupted Riegeli/records file: block header hash mismatch\nmore")

    monkeypatch.setattr(data, "load", garbage)
    config = TrainConfig.from_flags(dataset="digits", data_dir="/somewhere")
    with pytest.raises(ConfigError, match="--data_dir: cannot read or prepare digits") as e:
        load_dataset(config)
    assert "\n" not in str(e.value) and "more" not in str(e.value)  # its first line only


# -- memory: what grows with a flag is counted, and a chunk's host batches are capped ----------


def test_the_estimate_counts_attention_and_the_mlp_ratio():
    from scaling_training.sizes import estimate

    def lm(seq_len, **kw):
        return estimate("lm", 128, 2, 8, 3, (seq_len,), 256, **kw)

    params, short = lm(64, heads=4, mlp_ratio=4)
    _, long = lm(4096, heads=4, mlp_ratio=4)
    # attention weights: heads x tokens^2 per block and example, so 64x the window is
    # more than 64x the activations (the quadratic term) ...
    assert long > 64 * short
    assert long >= 2 * 8 * 4 * 4096**2
    # ... and the MLP's ratio counts in the parameters (q, k, v, out + 2 x ratio x w^2)
    wider, _ = lm(64, heads=4, mlp_ratio=8)
    assert wider - params == 2 * 4 * 2 * 128**2


def test_an_lm_whose_attention_cannot_fit_is_refused_before_anything_moves(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "keep.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in workdir.iterdir()}
    # ~0.5 TiB of attention weights (64 heads x 4096^2 per block and window): past any host
    cases = [
        (["--seq_len=4096", "--heads=64"], "--seq_len"),
        (["--mlp_ratio=1000000"], "--mlp_ratio"),
    ]
    for flags, blamed in cases:
        command = [sys.executable, "train.py", "--model=lm", *flags, f"--workdir={workdir}"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and blamed in result.stderr, result.stderr
        assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before


def test_a_chunk_never_holds_more_host_batches_than_the_cap():
    import numpy as np

    from scaling_data.dataset import make_dataset
    from scaling_training import engine

    x = np.zeros((16, 1024, 1024), np.float32)  # 4 MiB an example
    dataset = make_dataset("big", x, np.zeros(16, np.int32), x[:2], np.zeros(2, np.int32), 2)
    cap = engine.host_chunk_steps(dataset, batch_size=8)
    per_step = 8 * (x[0].nbytes + 4)  # a batch of 8 examples and their int32 labels
    assert cap * per_step <= engine.HOST_CHUNK_BYTES < (cap + 1) * per_step
    assert engine.host_chunk_steps(dataset, batch_size=8, members=100) == 1
    lengths = engine.chunk_lengths(100_000, 100_000, cap)
    assert sum(lengths) == 100_000 and max(lengths) == cap
