"""The import structure: the engine and the measurements never reach the command-line app,
and no modules import each other (in a cycle), counting imports inside functions."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("scaling_training", "scaling", "rules", "zoo", "scaling_data")
# The command-line app: train.py and the training modules that read its settings.
APP = {
    "train",
    "scaling_training.config",
    "scaling_training.validation",
    "scaling_training.loop",
    "scaling_training.fits",
    "scaling_training.single",
    "scaling_training.sweep",
    "scaling_training.recipe",
    "scaling_training.checkpoint",
    "scaling_training.progress",
    "scaling_training.distributed",
}
ENGINE = (
    "scaling_training.engine",
    "scaling_training.models",
    "scaling_training.schedules",
)


def module_names() -> list[str]:
    names = ["train"]
    for package in PACKAGES:
        for file in sorted(os.listdir(os.path.join(ROOT, package))):
            if file.endswith(".py") and file != "__init__.py":
                names.append(f"{package}.{file[:-3]}")
    return names


def imports_of(module: str, known: set[str]) -> set[str]:
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    with open(path) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known and name != module}


GRAPH = {m: imports_of(m, set(module_names())) for m in module_names()}


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize("module", ENGINE + tuple(m for m in GRAPH if m.startswith("scaling.")))
def test_engine_and_measurements_never_reach_the_app(module):
    assert not reachable(module) & APP, sorted(reachable(module) & APP)


def test_no_import_cycles():
    cycles = sorted(m for m in GRAPH if m in reachable(m))
    assert not cycles


def test_the_graph_is_read():  # the checks above would pass on an empty graph
    assert "scaling_training.engine" in GRAPH["scaling_training.single"]
    assert "scaling_training.engine" in GRAPH["scaling.grid"]
    assert (
        "scaling_training.single" in GRAPH["scaling_training.loop"]
        and "scaling_training.sweep" in GRAPH["scaling_training.loop"]
    )
