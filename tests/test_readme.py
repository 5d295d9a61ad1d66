"""The README's "Rules in your own Flax code" section runs as written."""

import pathlib
import re

import pytest

import rules

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Rules in your own Flax code"


def section_blocks(text: str) -> list[str]:
    """The fenced python blocks between SECTION and the next level-2 heading."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    body = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


def test_the_section_has_the_recipe():
    blocks = section_blocks(README.read_text())
    joined = "\n".join(blocks)
    for call in ("rules.parametrize(", "rules.optimizer(", "nnx.eval_shape(", "jax.eval_shape("):
        assert call in joined


def test_readme_code_runs(monkeypatch):
    blocks = section_blocks(README.read_text())
    assert len(blocks) >= 6
    # my_rules.py registers "my_mup": run it against an empty registry copy
    monkeypatch.setattr(rules.registry, "_RULES", dict(rules.registry._RULES))
    namespace: dict = {"__name__": "readme"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md block {index}", "exec"), namespace)
        except Exception as error:  # name the block that broke
            pytest.fail(f"README python block {index} failed: {error!r}\n{block}")
    assert namespace["restored_plan"].scales == namespace["plan"].scales
    branch = rules.residual_multiplier(rules.completep, 4, 2)
    assert branch == pytest.approx(0.5)
    assert namespace["lm"].blocks[0].residual_multiplier == branch
