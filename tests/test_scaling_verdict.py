"""coord's verdict: the slopes of the widest pair, and the readout's designed shrink."""

from scaling import coord


def _result(slopes: dict[str, tuple[float, float]]) -> dict:
    """A coord result over widths 256 and 512 whose layers' last-step activation and change
    RMS scale as 512/256 ** slope."""
    runs = {"256": {"activation": {}, "change": {}}, "512": {"activation": {}, "change": {}}}
    for layer, (activation, change) in slopes.items():
        for kind, slope in (("activation", activation), ("change", change)):
            runs["256"][kind][layer] = [1.0, 1.0]
            runs["512"][kind][layer] = [1.0, 2.0**slope]
    return {"layers": list(slopes), "runs": runs}


def test_flat_and_growing_and_vanishing_layers_are_named():
    v = coord.verdict([256, 512], _result({"input": (0.0, 0.1), "hidden/0": (0.0, -0.1)}))
    assert v["verdict"] == "flat" and not v["grow"] and not v["vanish"]
    v = coord.verdict([256, 512], _result({"hidden/0": (0.5, 0.0), "hidden/1": (0.0, -0.5)}))
    assert v["verdict"] == "not flat"
    assert v["grow"] == ["hidden/0 (activation +0.50)"]
    assert v["vanish"] == ["hidden/1 (change -0.50)"]


def test_readout_activation_vanishing_by_design_is_not_judged():
    """muP's readout output at init vanishes like width^-1/2 by design: not a failure."""
    v = coord.verdict([256, 512], _result({"hidden/0": (0.0, 0.0), "output": (-0.5, 0.0)}))
    assert v["verdict"] == "flat"
    assert v["not_judged"] == ["output (activation -0.50)"]
    assert "not judged" in coord.verdict_line(v)
    # its change vanishing, or its activation growing, still counts
    v = coord.verdict([256, 512], _result({"output": (-0.5, -0.5)}))
    assert v["verdict"] == "not flat" and v["vanish"] == ["output (change -0.50)"]
    v = coord.verdict([256, 512], _result({"output": (0.5, 0.0)}))
    assert v["verdict"] == "not flat" and v["grow"] == ["output (activation +0.50)"]
