"""`rules`' public names: `__all__` holds every registered rule and resolves name by name,
and the lazy table `_LAZY` and the `TYPE_CHECKING` imports that show it to editors and
type checkers name the same things (read from the file's syntax tree, so they cannot drift)."""

import ast
import os
import subprocess
import sys

import rules

INIT = os.path.join(os.path.dirname(rules.__file__), "__init__.py")


def _tree() -> ast.Module:
    with open(INIT) as f:
        return ast.parse(f.read())


def type_checking_imports() -> dict[str, str]:
    """name -> module for each `from M import name` under `if TYPE_CHECKING:`."""
    found = {}
    for node in _tree().body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), (
                    f"not `from M import name`: {ast.unparse(stmt)}"
                )
                found |= {alias.asname or alias.name: stmt.module for alias in stmt.names}
    return found


def lazy_table() -> dict[str, str]:
    for node in _tree().body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["_LAZY"]:
            return ast.literal_eval(node.value)
    raise AssertionError("rules/__init__.py has no `_LAZY = {...}` literal")


def test_type_checking_block_and_lazy_table_name_the_same_things():
    hinted, lazy = type_checking_imports(), lazy_table()
    assert hinted, "rules/__init__.py has no `if TYPE_CHECKING:` imports"
    assert hinted == lazy, (
        "rules/__init__.py: add each lazy name to both `_LAZY` and the TYPE_CHECKING block; "
        f"only in _LAZY: {sorted(set(lazy.items()) - set(hinted.items()))}, "
        f"only in TYPE_CHECKING: {sorted(set(hinted.items()) - set(lazy.items()))}"
    )
    assert lazy == rules._LAZY


def test_every_public_name_resolves_and_lazy_names_are_public():
    missing = [name for name in rules.__all__ if not hasattr(rules, name)]
    assert not missing, f"in rules.__all__ but not importable: {missing}"
    assert len(set(rules.__all__)) == len(rules.__all__), "rules.__all__ repeats a name"
    assert not set(rules._LAZY) - set(rules.__all__), "add the lazy names to rules.__all__"
    # Each lazy name is the object its module defines, not a copy or another object.
    for name, module in rules._LAZY.items():
        assert getattr(rules, name) is getattr(sys.modules[module], name), name
    assert set(rules._LAZY) <= set(dir(rules))


def test_every_registered_rule_is_public_under_its_name():
    # A fresh interpreter: other tests register rules of their own in this one.
    out = subprocess.run(
        [sys.executable, "-c", "import rules; print(' '.join(rules.names()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    registered = out.stdout.split()
    assert "mup_naive_spectral" in registered and "sp" in registered
    missing = sorted(set(registered) - set(rules.__all__))
    assert not missing, f"registered rules missing from rules.__all__: {missing}"
    for name in registered:
        assert getattr(rules, name) is rules.get(name), name
