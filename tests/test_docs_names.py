"""WORKSPACE.md's tables name code that exists, so the map cannot drift from the code.

Read: every table row of WORKSPACE.md (a line starting with `|`), split into cells at `|`.
Each backticked span `s` in a row is checked by the first of these patterns it matches:

1. Paths: `s` of letters, digits and `_ . - /` (optionally `path::name`) that contains `/`
   or ends in `.py`, and whose first part is a top-level entry of the repository (`rules/`,
   `tests/`, `train.py`, ...): the path must exist, and `name` must be defined at the top of
   that file. A bare `x.py` in a row whose first cell is a folder (`benchmarks/`) is looked
   up in that folder. Paths into folders the repository does not hold (`runs/...`,
   `workdir/.lock`, parameter paths such as `hidden/conv/0`) are not checked.
2. Dotted names: `a.b[.c ...]`, optionally followed by a call `(...)`, whose first part is
   one of the packages (`rules`, `zoo`, `scaling`, `scaling_data`, `scaling_training`,
   `train`), the project's own alias `data` (`import scaling_data as data`), or the file
   name of a module in one of the packages (`engine.make_evaluate`; `transfer.x` may be in
   either `transfer` module): it must resolve by importing the longest module prefix and
   `getattr` of the rest (`train.x` and `scaling.__main__.x`: `x` bound at the top of the
   script, read as in 3). Spans whose last part is a file suffix (`metrics.jsonl`,
   `sweep.png`) are file names, not checked.
3. Module-map rows: rows whose first cell holds only backticked paths of Python modules
   or packages (`rules/optim.py`, `scaling_data/`). In the other cells, every identifier
   that looks like a code name (it has a `_` or a capital letter, or a call follows:
   `scale_by_tree`, `Parametrization`, `optimizer(name, lr, source)`) must be an attribute
   of one of the row's modules, of a class named before it in the row (`Parametrization`
   (..., `describe`)), of a class the module defines (a field: `tail_loss`), or a parameter
   of a function or class the module defines (a keyword: `weight_decays`); a dotted span
   whose first part is such an attribute (`Rule.requires`) must resolve on it. Plain
   lowercase words (`sgd`, `mnist`, `depth`, `record`) are too often values (optimizer,
   dataset, axis names) and are not checked. Scripts (`train.py`, `__main__.py`, files
   outside the packages) are read, not imported (the two CLIs' absl flags would clash):
   their attributes are the names bound at their top.
   Spans that are not Python names (`--flag`, `init="keep"`, `x [N, T]`) match none of the
   patterns; another library's name is written with its module (`nnx.split_rngs`).

Importing the package modules costs a few seconds (jax, flax, optax); nothing else runs.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import functools
import importlib
import inspect
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = os.path.join(ROOT, "WORKSPACE.md")
PACKAGES = ("rules", "zoo", "scaling", "scaling_data", "scaling_training")
ALIASES = {"data": "scaling_data"}
SCRIPTS = {"train": "train.py", "scaling.__main__": "scaling/__main__.py"}
FILE_SUFFIXES = {"json", "jsonl", "png", "py", "md", "npz", "txt", "lock", "csv", "toml"}
IDENT = r"[A-Za-z_]\w*"
NAME = re.compile(rf"({IDENT}(?:\.{IDENT})*)(?:\(.*\))?")
PATH = re.compile(r"([\w.\-/]+?)(?:::(\w+))?")


def table_rows() -> list[tuple[int, list[str]]]:
    """(line number, cells) of each table row, header and separator rows included."""
    rows = []
    with open(WORKSPACE) as f:
        for number, line in enumerate(f, 1):
            if line.startswith("|"):
                cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
                rows.append((number, [cell.strip() for cell in cells]))
    return rows


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def is_script(path: str) -> bool:
    parts = path.split("/")
    return parts[-1] == "__main__.py" or len(parts) == 1 or parts[0] not in PACKAGES


def module_name(path: str) -> str:
    return path.rstrip("/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@functools.cache
def script_names(path: str) -> frozenset[str]:
    """Names bound at the top of a file, read from its syntax tree."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names)


@functools.cache
def short_modules() -> dict[str, list[str]]:
    """`engine` -> ["scaling_training.engine"]: module file names in the packages."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for file in sorted(os.listdir(os.path.join(ROOT, package))):
            if file.endswith(".py") and not file.startswith("__"):
                found.setdefault(file[:-3], []).append(f"{package}.{file[:-3]}")
    return found


def resolve(dotted: str) -> bool:
    """Import the longest module prefix of a fully qualified name, getattr the rest."""
    for module, path in SCRIPTS.items():  # read, not imported: their absl flags would clash
        if dotted.startswith(module + "."):
            return dotted[len(module) + 1 :] in script_names(path)
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        return attribute_chain(obj, parts[cut:])
    return False


def attribute_chain(obj: object, parts: list[str]) -> bool:
    for part in parts:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def qualified(dotted: str) -> list[str] | None:
    """The fully qualified names a dotted span may mean (pattern 2), or None: not ours."""
    first, _, rest = dotted.partition(".")
    if rest.rsplit(".", 1)[-1] in FILE_SUFFIXES:
        return None
    if first in PACKAGES or first == "train":
        return [dotted]
    if first in ALIASES:
        return [f"{ALIASES[first]}.{rest}"]
    if first in short_modules():
        return [f"{module}.{rest}" for module in short_modules()[first]]
    return None


def row_modules(first_cell: str) -> list[str] | None:
    """The repository paths of a module-map row's Python modules, or None (pattern 3)."""
    paths = spans(first_cell)
    if not paths or re.sub(r"`[^`]+`|[\s,]", "", first_cell):
        return None
    for path in paths:
        full = os.path.join(ROOT, path)
        python = path.endswith(".py") or os.path.isfile(os.path.join(full, "__init__.py"))
        if not (python and os.path.exists(full)):
            return None
    return paths


MISSING = object()


def module_object(path: str, dotted: str) -> object:
    """What `dotted` names in the module at `path` (MISSING: nothing; scripts: True)."""
    first, *rest = dotted.split(".")
    if is_script(path):
        return True if first in script_names(path) and not rest else MISSING
    obj = importlib.import_module(module_name(path))
    for part in [first, *rest]:
        if not hasattr(obj, part):
            return MISSING
        obj = getattr(obj, part)
    return obj


@functools.cache
def members_and_parameters(path: str) -> frozenset[str]:
    """Attributes of the classes a module defines and parameters of its functions/classes."""
    if is_script(path):
        return frozenset()
    module = importlib.import_module(module_name(path))
    names = set()
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__ or not callable(obj):
            continue
        if isinstance(obj, type):
            names |= set(dir(obj)) | set(getattr(obj, "__dataclass_fields__", ()))
        with contextlib.suppress(TypeError, ValueError):  # some builtins have no signature
            names |= set(inspect.signature(obj).parameters)
    return frozenset(names)


def looks_like_code(name: str, call: bool) -> bool:
    return call or "_" in name or name != name.lower()


def module_binds(path: str, first: str) -> bool:
    if is_script(path):
        return first in script_names(path)
    return hasattr(importlib.import_module(module_name(path)), first)


@functools.cache
def repository_entries() -> frozenset[str]:
    """The checkout's top-level entries, less what .gitignore names: a user's `runs/` (made
    by `./dev train`) is not part of the repository, and its paths are not checked."""
    with open(os.path.join(ROOT, ".gitignore")) as f:
        ignored = [line.strip().strip("/") for line in f if line.strip()[:1] not in ("", "#")]
    return frozenset(
        entry
        for entry in os.listdir(ROOT)
        if not any(fnmatch.fnmatch(entry, pattern) for pattern in ignored)
    )


def problems_in_row(number: int, cells: list[str]) -> list[str]:
    top = repository_entries()
    folder = spans(cells[0])[0] if spans(cells[0]) and spans(cells[0])[0].endswith("/") else ""
    modules = row_modules(cells[0])
    where = f"WORKSPACE.md:{number} (row {cells[0]})"
    found, classes = [], []  # classes named so far in the row: their attributes count too
    for index, cell in enumerate(cells):
        for span in spans(cell):
            path = PATH.fullmatch(span)
            if path and ("/" in path[1] or path[1].endswith(".py")):
                file, name = path[1], path[2]
                if "/" not in file and folder and file not in top:
                    file = folder + file
                if file.split("/")[0] not in top:
                    continue  # a path outside the repository (runs/, workdir/...)
                if not os.path.exists(os.path.join(ROOT, file)):
                    found.append(f"{where}: no file `{file}`")
                elif name and name not in script_names(file):
                    found.append(f"{where}: `{file}` defines no `{name}`")
                continue
            match = NAME.fullmatch(span)
            if not match:
                continue
            dotted, call = match[1], span != match[1]
            if "." in dotted and (meanings := qualified(dotted)) is not None:
                if not any(resolve(m) for m in meanings):
                    found.append(f"{where}: `{dotted}` does not resolve (tried {meanings})")
                continue
            if modules is None or index == 0:
                continue
            first = dotted.split(".")[0]
            if "." in dotted and not any(module_binds(p, first) for p in modules):
                continue  # another library's name (`nnx.scan`, `lax.scan`)
            if "." not in dotted and not looks_like_code(dotted, call):
                continue
            objects = [module_object(p, dotted) for p in modules]
            known = "." not in dotted and (
                any(hasattr(c, dotted) for c in classes)
                or any(dotted in members_and_parameters(p) for p in modules)
            )
            if all(o is MISSING for o in objects) and not known:
                found.append(f"{where}: `{dotted}` is not an attribute of {', '.join(modules)}")
            classes += [o for o in objects if isinstance(o, type)]
    return found


def test_workspace_tables_name_existing_code():
    rows = table_rows()
    assert len(rows) > 100, "WORKSPACE.md's tables were not found"
    module_rows = [cells for _, cells in rows if row_modules(cells[0])]
    assert len(module_rows) > 50, "the module map's rows were not recognised"
    problems = [p for number, cells in rows for p in problems_in_row(number, cells)]
    assert not problems, "WORKSPACE.md names code that is not there:\n" + "\n".join(problems)


def test_ignored_folders_are_not_the_repository():
    assert "rules" in repository_entries() and "runs" not in repository_entries()


@pytest.mark.parametrize(
    "row, expected",
    [
        ("| `rules/optim.py` | `scale_by_tree`, `optimizer(name, lr)` | - |", []),
        ("| `rules/optim.py` | `no_such_thing` | - |", ["`no_such_thing` is not an attribute"]),
        ("| `rules/optim.py` | `NoSuch`, `nosuch()`, `sgd`, `record` | - |", ["NoSuch", "nosuch"]),
        ("| `rules/foreign.py` | `Parametrization` (`describe`, `logit_scale`) | - |", []),
        ("| `rules/foreign.py` | `Parametrization` (`no_such_property`) | - |", ["no_such_prop"]),
        ("| `scaling/grid.py` | `tail_loss`, `spec`, `no_field` | - |", ["no_field"]),
        ("| `rules/optim.py` | `Rule.requires`, `nnx.scan`, `--lr`, `a b` | - |", []),
        ("| x | `rules.optimizer`, `scaling.optimum.find_optimum` | - |", ["find_optimum"]),
        ("| x | `engine.make_evaluate`, `transfer.measure`, `data.load` | - |", []),
        ("| x | `engine.no_such` | - |", ["`engine.no_such` does not resolve"]),
        ("| x | `train.main`, `scaling.__main__.run`, `train.nope` | - |", ["`train.nope`"]),
        ("| x | `rules/nope.py`, `runs/x/y.json`, `sweep.json`, `metrics.jsonl` | - |", ["nope"]),
        ("| `train.py` | `main`, `ConfigError`, `missing_name` | - |", ["`missing_name`"]),
        ("| `benchmarks/` | `common.py`, `nope.py` | - |", ["no file `benchmarks/nope.py`"]),
    ],
)
def test_the_checker_finds_what_it_should(row, expected):
    cells = [cell.strip() for cell in row.strip().split("|")[1:-1]]
    problems = problems_in_row(7, cells)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected):
        assert fragment in problem and "WORKSPACE.md:7" in problem, problem
