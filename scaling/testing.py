"""Assertions for users' own test suites: does my model transfer under my rule?

    from scaling.testing import ModelFamily, assert_update_sizes_transfer

    family = ModelFamily(lambda width, depth, seed: MyModel(width, depth, rules.mup, seed),
                         input_shape=(32,), num_classes=10)
    assert_update_sizes_transfer(family, widths=(256, 512), depth=4)

The model must be built from `rules` layers (it carries its LR multipliers). A failure
names each layer that breaks and by how much.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from scaling import transfer, update
from scaling.grid import GridSpec


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """`build(width, depth, seed)` plus the input shape and number of outputs it expects."""

    build_fn: Callable
    input_shape: tuple[int, ...]
    num_classes: int

    def build(self, width: int, depth: int, seed: int):
        return self.build_fn(width, depth, seed)


def _pair(widths, depths, width, depth) -> list[tuple[int, int]]:
    if widths is not None and depths is None and depth is not None and len(widths) == 2:
        return [(w, depth) for w in widths]
    if depths is not None and widths is None and width is not None and len(depths) == 2:
        return [(width, d) for d in depths]
    raise ValueError(
        "give one pair and the size held fixed: widths=(n, m), depth=L or depths=(L, M), width=n"
    )


def update_size_ratios(
    family, *, widths=None, depths=None, width=None, depth=None, seeds: int = 8
) -> dict[str, float]:
    """C_l(second) / C_l(first) per layer (width pair) or per layer group (depth pair)."""
    pairs = _pair(widths, depths, width, depth)
    sizes = [update.measure(family, [w], [d], seeds)["results"][0]["C"] for w, d in pairs]
    first, second = sizes if widths is not None else (update.layer_groups(s) for s in sizes)
    return {k: second[k] / first[k] for k in first if k in second}


def _check(ratios: dict[str, float], what: str, pair: str, low: float, high: float) -> None:
    broken = {k: r for k, r in ratios.items() if not low <= r <= high}
    if broken:
        lines = [
            f"  {k}: {what} x{r:.3g} (allowed x{low:.3g} to x{high:.3g})" for k, r in broken.items()
        ]
        raise AssertionError(f"{what} does not transfer across {pair}:\n" + "\n".join(lines))


def assert_update_sizes_transfer(
    family,
    *,
    widths=None,
    depths=None,
    width=None,
    depth=None,
    tolerance: float = 1.33,
    seeds: int = 8,
) -> dict[str, float]:
    """Fail unless each layer's one-step update size changes by at most `tolerance`x
    across the pair. Returns the ratios."""
    ratios = update_size_ratios(
        family, widths=widths, depths=depths, width=width, depth=depth, seeds=seeds
    )
    pair = f"widths {tuple(widths)}" if widths is not None else f"depths {tuple(depths)}"
    _check(ratios, "update size", pair, 1 / tolerance, tolerance)
    return ratios


def assert_optimal_lr_transfers(
    family,
    dataset,
    lrs,
    *,
    widths=None,
    depths=None,
    width=None,
    depth=None,
    tolerance: float = 2.0,
    seeds: int = 2,
    steps: int = 100,
    batch_size: int = 64,
    optimizer: str = "adam",
) -> float:
    """Fail unless the best LR moves by at most `tolerance`x across the pair.

    The best LR is that of `scaling.optimum` (train loss over the last 10% of steps, averaged
    over seeds, refined near the argmin), as the probes report it; an optimum at an end of
    `lrs` fails with "widen lrs" rather than passing on an edge value. Returns
    eta_opt(second) / eta_opt(first)."""
    pairs = _pair(widths, depths, width, depth)
    axis = "width" if widths is not None else "depth"
    sizes = [w if axis == "width" else d for w, d in pairs]
    fixed = pairs[0][1] if axis == "width" else pairs[0][0]
    grid = GridSpec(family, dataset, seeds, steps, batch_size, optimizer)
    result = transfer.measure(grid, sizes, axis, fixed, lrs, echo=lambda _: None)
    for size, entry in zip(sizes, result["results"]):
        if entry["lr_opt"] is None:
            raise AssertionError(
                f"no optimal LR at {axis} {size}: {entry['where']} "
                f"(lrs {min(lrs):g}..{max(lrs):g}); widen lrs"
            )
    optima = [entry["lr_opt"] for entry in result["results"]]
    ratio = optima[1] / optima[0]
    _check({"eta_opt": ratio}, "optimal LR", f"{axis}s {tuple(sizes)}", 1 / tolerance, tolerance)
    return ratio
