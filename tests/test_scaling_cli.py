"""`python -m scaling PROBE`: files written, tables printed, one-line errors (the CLI's `main`
in one interpreter for all its command lines: tests/cli_cases.py)."""

import json
import math

import pytest
from cli_cases import one_line, run_cases

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# Widths 16 and 32 (and 32 alone for update's depths) wherever a probe allows: the runs share
# one interpreter, so programs and inits of one shape compile once for all of them
PROBES = [
    ("coord", ["--widths=16,32", "--seeds=1", "--steps=2"], ["slopes", "runs", "layers"]),
    ("update", ["--widths=32", "--depths=2,4", "--seeds=2"], ["eta_star", "exponent", "ci"]),
    ("sharpness", ["--widths=16,32", "--depths=2", "--seeds=1"], ["results"]),
    (
        "poly",
        ["--widths=16,32", "--depths=2", "--seeds=2", "--activation=linear"],
        ["eta_opt", "exponent", "found_in_range"],
    ),
    (
        "transfer",
        [
            "--widths=16,32",
            "--depths=2",
            "--seeds=2",
            "--steps=20",
            "--lrs=0.01,0.03,0.1,0.3",
            "--optimizer=adam",
            "--normalization=batch",  # BatchNorm statistics kept per member
        ],
        ["eta_opt", "exponent"],
    ),
    (
        "maxlr",
        [
            "--widths=16,32",
            "--depths=1",
            "--seeds=2",
            "--steps=30",
            "--dataset=two_gaussians",
            "--lrs=0.01,0.1,1,10",
            "--rounds=1",
            "--threshold=0.85",
        ],
        ["results", "fit_depth_x_width"],
    ),
]
# The shapes of the maxlr probe run above (sizes, seeds, steps, four LRs): its compiled
# programs are reused, only the LRs (too small to reach the threshold) differ
MAXLR_BELOW_RANGE = ["maxlr", "--widths=16,32", "--depths=1", "--seeds=2", "--steps=30"]
MAXLR_BELOW_RANGE += ["--dataset=two_gaussians", "--lrs=1e-6,2e-6,4e-6,8e-6", "--rounds=1"]
MAXLR_BELOW_RANGE += ["--threshold=0.99", "--base_width=16"]
# The probe runs of this file, each with its own --out folder, in one interpreter
# (tests/cli_cases.py: JAX and the CLI load once, not once a run). A real `python -m scaling`
# process is run by test_bad_inputs.py (test_real_processes_agree), test_hostile_inputs.py
# and test_scaling_user_models.py.
RUNS = {f"probe_{probe}": [probe, *args, "--base_width=16"] for probe, args, _ in PROBES}
RUNS |= {
    "jelassi": ["update", "--protocol=jelassi", "--widths=32", "--depths=2,4", "--seeds=3"],
    "jelassi_rule_given": [
        "update",
        "--protocol=jelassi",
        "--rule=mup",
        "--widths=32",
        "--depths=2,4",
        "--seeds=1",
    ],
    "update_mean_field": [
        "update",
        "--widths=32",
        "--depths=2,4",
        "--seeds=2",
        "--rule=mean_field",
    ],
    "maxlr_below_range": MAXLR_BELOW_RANGE,
}


@pytest.fixture(scope="module")
def all_runs(tmp_path_factory):
    """RUNS' and BAD_REQUESTS' command lines in one interpreter (one start for both tables):
    RUNS' id, or a bad request's arguments joined with spaces -> {"status", "stderr",
    "stdout", "same", "out" (its --out folder)}."""
    folder = tmp_path_factory.mktemp("probe_runs")
    cases = {}
    for key, args in RUNS.items():
        (folder / key).mkdir()
        cases[key] = ([*args, f"--out={folder / key}"], folder / "unwatched")
    for i, (args, _) in enumerate(BAD_REQUESTS):
        out = folder / f"bad_{i}" / "out"
        out.parent.mkdir()
        cases[" ".join(args)] = ([*args, f"--out={out}"], out)
    results = run_cases("scaling", cases, folder)
    return {key: r | {"out": cases[key][1] if key not in RUNS else folder / key}
            for key, r in results.items()}  # fmt: skip


@pytest.fixture(scope="module")
def runs(all_runs):
    """RUNS' id -> {"status", "stderr", "stdout", "out" (its --out folder)}."""
    return {key: all_runs[key] for key in RUNS}


@pytest.mark.parametrize("probe, args, keys", PROBES)
def test_probe_writes_json_and_png(runs, probe, args, keys):
    proc, tmp_path = runs[f"probe_{probe}"], runs[f"probe_{probe}"]["out"]
    assert proc["status"] == 0, proc["stderr"]
    assert f"{probe}: mlp / mup\n" in proc["stdout"]
    record = json.loads((tmp_path / f"{probe}.json").read_text())
    assert record["probe"] == probe and record["rule"] == "mup"
    for key in keys:
        assert key in record, key
    given = [a.split("=")[1] for a in args if a.startswith("--normalization=")]
    assert record["normalization"] == (given[0] if given else None)
    assert (tmp_path / f"{probe}.png").read_bytes()[:8] == PNG_MAGIC
    if probe in SEED_OPTIMA:
        _assert_seed_scatter(record, *SEED_OPTIMA[probe])


# Probes that report an optimum: where each size's per-seed optima and scatter are.
SEED_OPTIMA = {
    "update": (lambda e: e["eta_star"]["max"], lambda e: e["seed_scatter_log2"]["max"]),
    "poly": (lambda e: e["eta_opt"], lambda e: e["seed_scatter_log2"]),
    "maxlr": (lambda e: e["eta_star_per_seed"], lambda e: e["seed_scatter_log2"]),
    "transfer": (
        lambda e: [lr for lr, w in zip(e["eta_opt"], e["where_per_seed"]) if w == "inside"],
        lambda e: e["seed_scatter_log2"],
    ),
}


def _assert_seed_scatter(record, optima, scatter):
    """Every size's seed scatter is the std (ddof 1) of its per-seed optima in log2."""
    import numpy as np

    for entry in record["results"]:
        found = [v for v in optima(entry) if v]
        if len(found) < 2:
            assert scatter(entry) is None
        else:
            assert scatter(entry) == pytest.approx(np.std(np.log2(found), ddof=1), abs=1e-9)


def test_jelassi_protocol_sets_its_knobs_and_averages_in_log(runs):
    proc = runs["jelassi"]
    assert proc["status"] == 0, proc["stderr"]
    record = json.loads((proc["out"] / "update.json").read_text())
    assert (record["rule"], record["base_width"], record["outputs"]) == ("mean_field", None, 1)
    assert record["seed_average"] == "geometric" and record["protocol"] == "jelassi"
    for entry, eta in zip(record["results"], record["eta_star"]["max"]):
        assert entry["criterion_layers"] == [k for k in entry["layers"] if k.startswith("hidden")]
        logs = [math.log(v) for v in entry["eta_star"]["max"]]
        assert eta == pytest.approx(math.exp(sum(logs) / len(logs)))
    # a flag given on the command line wins over the protocol's
    proc = runs["jelassi_rule_given"]
    assert proc["status"] == 0, proc["stderr"]
    assert json.loads((proc["out"] / "update.json").read_text())["rule"] == "mup"


def test_update_json_numbers_are_consistent(runs):
    proc = runs["update_mean_field"]
    assert proc["status"] == 0, proc["stderr"]
    record = json.loads((proc["out"] / "update.json").read_text())
    assert record["depths"] == [2, 4] and record["axis"] == "depth"
    low, high = record["ci"]["max"]
    assert low <= record["exponent"]["max"] <= high
    for entry, eta in zip(record["results"], record["eta_star"]["max"]):
        assert eta == pytest.approx(sum(entry["eta_star"]["max"]) / 2)
        assert min(entry["eta_star"]["max"]) > 0


def test_maxlr_reports_not_found_instead_of_an_edge_value(runs):
    proc = runs["maxlr_below_range"]
    assert proc["status"] == 0, proc["stderr"]
    record = json.loads((proc["out"] / "maxlr.json").read_text())
    assert all(e["status"] == "below range" and e["eta_star"] is None for e in record["results"])
    assert record["fit_depth_x_width"] is None
    assert "too few sizes" in proc["stdout"]


BAD_REQUESTS = [
    (["nope"], "give one probe"),
    (["coord", "--widths=64"], "at least two sizes"),
    (["update", "--widths=32,64", "--depths=2,4"], "not both"),
    (["poly", "--widths=32,64"], "deep linear MLP"),
    (["coord", "--rule=fancy"], "--rule: unknown rule"),
    (["coord", "--widths=a,b"], "--widths: expected integers"),
    (["transfer", "--lrs=0.1,-1"], "--lrs"),
    (["update", "--widths=64", "--depths=2,3", "--layers=nothing"], "matches none"),
    (["transfer", "--protocol=jelassi"], "--protocol"),
    (["transfer", "--outputs=1"], "--outputs"),
    (["update", "--base_width=-1"], "--base_width"),
    (["transfer", "--normalization=group"], "--normalization"),
    (["transfer", "--inputs=data"], "--inputs: coord and update"),
]


@pytest.fixture(scope="module")
def bad_request_results(all_runs):
    """BAD_REQUESTS' results, keyed by their arguments joined with spaces (run with RUNS)."""
    return {" ".join(args): all_runs[" ".join(args)] for args, _ in BAD_REQUESTS}


@pytest.mark.parametrize("args, message", BAD_REQUESTS)
def test_bad_requests_are_one_line_and_status_2(bad_request_results, args, message):
    assert message in one_line(bad_request_results[" ".join(args)])
