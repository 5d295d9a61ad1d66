"""Many command lines of one CLI in one interpreter (tests/scripts/run_cli_cases.py calls the
CLI's own `main` for each), so JAX and the CLI's imports load once, not once a case.

For the one-line-error tables of several test files; test_bad_inputs.py's
test_real_processes_agree checks that this runner reports what a real process shows.
"""

import json
import os
import pathlib
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "scripts", "run_cli_cases.py")

# `python -c LIMITED BYTES FLAGS...`: train.py under a file-size limit, set in the child itself
# (no preexec_fn: forking a process that has JAX's threads can deadlock). SIGXFSZ ignored:
# writes past the limit raise EFBIG, as on a full disk.
LIMITED = (
    "import resource, runpy, signal, sys\n"
    "limit = int(sys.argv.pop(1))\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.argv[0] = 'train.py'\n"
    "runpy.run_path('train.py', run_name='__main__')\n"
)


def run_cases(cli: str, cases: dict, folder: pathlib.Path) -> dict:
    """`cases`: id -> (args, watched path); `cli`: "train" or "scaling". Returns id ->
    {"status", "stderr", "stdout", "same"}, `same` True when the watched path is
    byte-identical (or still absent) after the case."""
    table = [
        {"id": key, "args": list(args), "tree": str(path)} for key, (args, path) in cases.items()
    ]
    case_file, out_file = folder / f"{cli}_cases.json", folder / f"{cli}_results.json"
    case_file.write_text(json.dumps(table))
    proc = subprocess.run(
        [sys.executable, RUNNER, cli, str(case_file), str(out_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(out_file.read_text())


def run_table(cli: str, rows: list, folder: pathlib.Path, complete) -> dict:
    """Run the first element (an argument list) of every row of a test table; each case
    gets its own folder, and `complete(args, case_folder)` -> (full args, watched path).
    Results are keyed by the row's arguments joined with spaces."""
    cases = {}
    for i, (args, *_) in enumerate(rows):
        case_folder = folder / str(i)
        case_folder.mkdir()
        cases[" ".join(args)] = complete(list(args), case_folder)
    return run_cases(cli, cases, folder)


def one_line(result: dict) -> str:
    """The single stderr line of a failed case (asserts status 2 and one line)."""
    assert result["status"] == 2, result
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1, result["stderr"]
    return lines[0]
