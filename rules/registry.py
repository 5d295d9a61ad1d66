"""Rules by name, so that `train.py --rule=NAME` finds built-in and user rules alike."""

from __future__ import annotations

from rules.algebra import Rule

_RULES: dict[str, Rule] = {}


def register(rule: Rule, name: str | None = None, *, overwrite: bool = False) -> Rule:
    """Make `rule` available as `name` (default: `rule.name`); returns the rule."""
    if not isinstance(rule, Rule):
        raise TypeError(
            f"register takes a Rule (e.g. rules.compose(...)), got {type(rule).__name__} "
            f"{getattr(rule, '__name__', '')}".rstrip()
        )
    name = name or rule.name
    if not name.isidentifier():
        raise ValueError(f"rule name must be a Python identifier, got {name!r}")
    if name in _RULES and not overwrite and _RULES[name] is not rule:
        raise ValueError(f"a rule named {name!r} is already registered; pass overwrite=True")
    _RULES[name] = rule
    return rule


def get(name: str) -> Rule:
    """The registered rule `name`; ValueError listing the choices otherwise."""
    try:
        return _RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}; choose one of: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_RULES)


def import_rules(spec: str) -> None:
    """Import a module (dotted name or path to a .py file) whose `register` calls add rules."""
    import importlib
    import importlib.util
    import os

    try:
        if spec.endswith(".py"):
            if not os.path.isfile(spec):
                raise ImportError(f"no file {spec!r}")
            name = "user_rules_" + os.path.splitext(os.path.basename(spec))[0]
            module_spec = importlib.util.spec_from_file_location(name, spec)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except SystemExit as e:  # a module that exits must not end the caller's program
        raise ImportError(f"it called sys.exit({e.code!r}) while being imported") from None
