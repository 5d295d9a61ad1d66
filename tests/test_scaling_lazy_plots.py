"""`python -m scaling` imports matplotlib (~1 s) only when it draws a plot: a refused request
or --help does not pay for it. Checked on the source (no interpreter start-up): no module of
the CLI's packages imports matplotlib at module level."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("scaling", "scaling_training", "scaling_data", "rules", "zoo")


def _module_level_imports(tree: ast.Module):
    """Imports run when the module is imported: outside every function body."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        stack.extend(ast.iter_child_nodes(node))


def test_no_module_imports_matplotlib_when_imported():
    eager = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if any(
            name.split(".")[0] == "matplotlib"
            for name in _module_level_imports(ast.parse(path.read_text()))
        )
    ]
    assert eager == []
