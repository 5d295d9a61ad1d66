"""Every probe on every zoo family: token models (lm) included, each rule, each optimizer family.

Tiny settings (widths 16 and 32, one seed, one or two steps): these tests check that a probe
runs and reports sane numbers or refuses with its reason, not what the numbers say.
"""

import math

import numpy as np
import pytest

import rules
import zoo
from scaling import coord, transfer, update
from scaling.grid import GridSpec
from scaling.inputs import ProbeInputs
from scaling.setup import ProbeModel

SHAPES = {  # (input shape, classes): small inputs each family accepts
    "mlp": ((12,), 4),
    "resmlp": ((12,), 4),
    "cnn1d": ((12,), 4),
    "cnn2d": ((8, 8, 1), 4),
    "resnet": ((8, 8, 1), 4),
    "vit": ((8, 8, 1), 4),
    "lm": ((8,), 16),
}
WIDTHS = (16, 32)
FAMILIES = {"sgd": "sgd", "adam": "adam"}  # one optimizer of each family the rules scale for


def spec(family: str, rule: str, optimizer: str, depth_base: int | None = None) -> ProbeModel:
    shape, classes = SHAPES[family]
    return ProbeModel.of(
        name=family,
        rule=rule,
        base_width=16,
        base_depth=depth_base,
        optimizer=rules.OPTIMIZERS[optimizer],
        input_shape=shape,
        num_classes=classes,
    )


def inputs(family: str) -> ProbeInputs:
    return ProbeInputs(tokens=family == "lm")


def depth(family: str) -> int:
    return 8 if family == "resnet" else 2  # ResNet depths are 6n + 2


def run_one_step_probes(family: str, rule: str, optimizer: str) -> dict:
    """coord (one step) and update on the pair of widths: their results, or the refusal."""
    s = spec(family, rule, optimizer)
    try:
        s.build(WIDTHS[0], depth(family), 0)
    except (ValueError, rules.RuleError) as e:  # a refusal must say why
        return {"refused": str(e)}
    c = coord.measure(s, WIDTHS, depth(family), 1, 1e-2, 1, optimizer, 4, inputs(family))
    u = update.measure(s, WIDTHS, [depth(family)], 1, inputs(family))
    return {"coord": c, "update": u}


def check_ran(result: dict, family: str) -> None:
    if "refused" in result:
        assert result["refused"].strip() and "\n" not in result["refused"].strip()
        return
    c, u = result["coord"], result["update"]
    assert c["inputs"] == ("random token ids" if family == "lm" else "normalised Gaussian inputs")
    assert "output" in c["layers"]
    for layer in c["layers"]:
        steps = c["runs"][str(WIDTHS[1])]["change"][layer]
        assert steps[0] == 0.0 and math.isfinite(steps[1]), layer
        assert all(math.isfinite(v) for v in c["slopes"][layer].values()), layer
    for entry in u["results"]:
        assert all(np.isfinite(v) and v >= 0 for v in entry["C"].values()), entry["C"]
        assert entry["C"]["output"] > 0


@pytest.mark.parametrize(
    "family, optimizer",
    [
        ("lm", "sgd"),
        ("vit", "adam"),
        pytest.param("lm", "adam", marks=pytest.mark.slow),
        pytest.param("vit", "sgd", marks=pytest.mark.slow),
    ],
)
def test_one_step_probes_run_on_transformers(family, optimizer):
    result = run_one_step_probes(family, "mup", optimizer)
    assert "refused" not in result, result
    check_ran(result, family)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", sorted(FAMILIES))
@pytest.mark.parametrize("rule", rules.names())
@pytest.mark.parametrize("family", zoo.names())
def test_one_step_probes_run_or_refuse_on_every_family_rule_and_optimizer(family, rule, optimizer):
    check_ran(run_one_step_probes(family, rule, optimizer), family)


def test_coord_on_data_batches_of_a_text_set():
    from scaling_data.text import TextDataset

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 16, (64, 8)).astype(np.int32)
    data = TextDataset("tiny_text", tokens, np.roll(tokens, -1, 1), tokens, tokens, 16)
    source = ProbeInputs(source="data", tokens=True, dataset=data)
    x, labels = source.batch((8,), 16, 4, seed=3)
    order = np.random.default_rng(3).permutation(64)[:4]
    np.testing.assert_array_equal(x, tokens[order])
    # the model, depth and step of the lm-sgd probe test above: the compiled programs (the
    # batch is their argument) come from the persistent cache, only the batch differs
    result = coord.measure(spec("lm", "mup", "sgd"), WIDTHS, 2, 1, 1e-2, 1, "sgd", 4, source)
    assert result["inputs"] == "dataset: training token windows of tiny_text"


@pytest.mark.parametrize("family", ["lm", pytest.param("vit", marks=pytest.mark.slow)])
def test_transfer_trains_transformers(family):
    from scaling_data.dataset import make_dataset
    from scaling_data.text import TextDataset

    rng = np.random.default_rng(0)
    if family == "lm":
        tokens = rng.integers(0, 16, (64, 8)).astype(np.int32)
        data = TextDataset("tiny_text", tokens, np.roll(tokens, -1, 1), tokens, tokens, 16)
    else:
        images = rng.normal(size=(64, 8, 8, 1))
        labels = rng.integers(0, 4, 64)
        data = make_dataset("tiny_images", images, labels, images, labels, 4)
    s = spec(family, "mup", "adam")
    lrs = [1e-3, 1e-2, 1e-1]
    grid = GridSpec(s, data, seeds=1, steps=2, batch_size=8, optimizer="adam")
    result = transfer.measure(grid, WIDTHS, "width", 1, lrs, echo=lambda _: 0)
    for entry in result["results"]:
        assert np.isfinite(entry["tail_loss"]).all(), entry["tail_loss"]
