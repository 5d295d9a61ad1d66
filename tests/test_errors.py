"""The one error path of both CLIs (scaling_training/errors.py): one error class, one set of
exit statuses, one `fail`; and what the CLIs share (dataset loading; the memory estimate)."""

from __future__ import annotations

import ast
import pathlib

import pytest

from scaling_training import errors
from scaling_training.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLI_CODE = [ROOT / "train.py", *(ROOT / "scaling").glob("*.py")]
CLI_CODE += (ROOT / "scaling_training").glob("*.py")


def test_a_config_error_names_its_flag_or_stands_alone():
    assert str(ConfigError("lr", "must be > 0")) == "--lr: must be > 0"
    assert ConfigError("lr", "x").flag == "lr"
    assert str(ConfigError("", "transfer: needs two sizes")) == "transfer: needs two sizes"
    assert isinstance(ConfigError("lr", "x"), ValueError)  # library callers catch ValueError


def test_fail_is_one_line_on_stderr_with_the_status(capsys):
    with pytest.raises(SystemExit) as exited:
        errors.fail("--out: 'a\nb' is a file")
    assert exited.value.code == errors.EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err == "error: --out: 'a\\nb' is a file\n"
    with pytest.raises(SystemExit) as exited:
        errors.fail("cannot write x", errors.EXIT_WRITE_FAILED)
    assert exited.value.code == 4


def test_a_rule_error_reads_as_the_rule_flag():
    import rules

    error = errors.rule_error(rules.RuleError("needs a residual"), "mlp")
    assert str(error) == "--rule: needs a residual (--model=mlp)"


def _definitions(path: pathlib.Path):
    """(kind, name) of the module-level exit codes, functions and classes `path` defines."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield "constant", target.id
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            yield type(node).__name__, node.name
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    yield "base", ast.unparse(base)


def test_one_error_class_one_fail_and_one_set_of_exit_codes():
    """No CLI module but errors.py defines an exit status, a `fail`, or an error class of
    its own for user input (library errors such as rules.RuleError are the library's)."""
    found = []
    for path in CLI_CODE:
        if path.name == "errors.py":
            continue
        for kind, name in _definitions(path):
            if kind == "constant" and name.startswith("EXIT_"):
                found.append(f"{path.name}: {name}")
            if kind == "FunctionDef" and name == "fail":
                found.append(f"{path.name}: def fail")
            if kind == "base" and name in ("ValueError", "Exception"):
                found.append(f"{path.name}: an error class deriving from {name}")
    assert not found, found


def test_both_clis_load_datasets_through_one_function():
    from scaling_training import datasets

    with pytest.raises(ConfigError, match=r"--dataset: unknown dataset 'imagenet'; choose one"):
        datasets.load("imagenet")
    assert datasets.load("two_gaussians").name == "two_gaussians"
    for path in (ROOT / "scaling" / "__main__.py", ROOT / "scaling_training" / "loop.py"):
        assert "datasets.load(" in path.read_text(), path


def test_the_probes_memory_check_names_the_axis_to_shrink(monkeypatch):
    """On the estimate train.py's check uses (sizes.estimate, sizes.step_bytes)."""
    from scaling.checks import check_fits
    from scaling_training import sizes

    monkeypatch.setattr(sizes, "available_bytes", lambda: (2**30, "test memory"))
    check_fits("mlp", (64, 128), (2,), 4, 32, (40,), 10)  # tiny: fits
    with pytest.raises(ConfigError, match=r"^--widths: the largest model needs"):
        check_fits("mlp", (64, 65536), (2,), 1, 32, (40,), 10)
    with pytest.raises(ConfigError, match=r"^--lrs: 10000 models trained at once"):
        check_fits("mlp", (4096,), (4,), 10000, 32, (40,), 10, blame="lrs")
