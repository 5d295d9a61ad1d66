"""`python tests/scripts/run_cli_cases.py {train,scaling} CASES.json RESULTS.json`: run many
command lines of one CLI in this one process (JAX is imported once), as the CLI's own
`main` would run them, and record for each its exit status, its stderr and stdout, and a hash of its
folder before and after.

A case is {"id", "args", "tree"(folder hashed), "hold_lock"(optional: a workdir whose lock
this process holds during the case, as a live run would)}. absl's flags are reset between
cases. An exception escaping `main` is recorded as status "exception" with its traceback on
stderr, so a test sees it as the traceback a user would see.
"""

import contextlib
import fcntl
import hashlib
import io
import json
import os
import stat
import sys
import traceback

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tree_hash(path: str) -> str:
    """Names, kinds and bytes of everything under `path` ("absent" when it does not exist).
    Links are hashed as links (their target's name, never followed), special files by kind:
    hashing never blocks on a FIFO."""
    if not os.path.lexists(path):
        return "absent"
    digest = hashlib.sha256()
    if not os.path.isdir(path) or os.path.islink(path):
        return _entry(path)
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        digest.update(f"D {os.path.relpath(folder, path)}\n".encode())
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            if name in dirs and not os.path.islink(full):
                continue  # walked itself
            digest.update(f"F {os.path.relpath(full, path)} {_entry(full)}\n".encode())
    return digest.hexdigest()


def _entry(path: str) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "link:" + os.readlink(path)
    if not stat.S_ISREG(mode):
        return f"special:{stat.S_IFMT(mode)}"
    with open(path, "rb") as f:
        return "file:" + hashlib.sha256(f.read()).hexdigest()


@contextlib.contextmanager
def held_lock(workdir: str | None):
    """Hold `workdir`'s lock as another live run would (flock conflicts between two open
    file descriptions, even in one process)."""
    if not workdir:
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"424242 other-host\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def run_case(cli, parse, argv: list[str]) -> tuple[object, str, str]:
    err, out = io.StringIO(), io.StringIO()
    status: object = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            flags.FLAGS.unparse_flags()
            cli.main(parse(argv))
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
        except BaseException:
            status = "exception"
            err.write(traceback.format_exc())
    return status, err.getvalue(), out.getvalue()


def main() -> None:
    which, cases_path, results_path = sys.argv[1:]
    if which == "train":
        import train as cli

        parse, program = cli.parse_flags, "train.py"
    else:
        import scaling.__main__ as cli

        parse, program = cli.parse, "scaling"
    with open(cases_path) as f:
        cases = json.load(f)
    results = {}
    for case in cases:
        with held_lock(case.get("hold_lock")):
            before = tree_hash(case["tree"])
            status, stderr, stdout = run_case(cli, parse, [program, *case["args"]])
            after = tree_hash(case["tree"])
        results[case["id"]] = {
            "status": status,
            "stderr": stderr,
            "stdout": stdout,
            "same": before == after,
        }
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
