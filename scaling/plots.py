"""PNG plots for the probes (matplotlib with the Agg backend, imported only here, and only
when a plot is drawn: a refused request or --help does not pay its ~1 s)."""

from __future__ import annotations

import math
import os


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_ticks(ax, xs) -> None:
    """Label a log axis at the measured sizes (64, 128, ...) rather than powers of ten;
    learning rates at 1, 2, 5 x 10^k as plain numbers (matplotlib's own minor labels
    overlap on a grid spanning less than a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

    sizes = sorted(set(float(x) for x in xs if x > 0))
    if not sizes:
        return
    if len(sizes) > 12 or not all(x.is_integer() for x in sizes):
        decades = math.log10(sizes[-1] / sizes[0])
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        return
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: str) -> None:
    """Write via a temporary file and a rename: a failed write never leaves half a PNG, and
    an earlier plot at `path` stays until the new one is complete."""
    from scaling_training.safe_files import temporary_beside

    fig.tight_layout()
    try:
        with temporary_beside(path, suffix=".png") as tmp:  # unique: never through a link
            fig.savefig(tmp, dpi=110)
            os.replace(tmp, path)
    finally:
        _pyplot().close(fig)


def lines(
    path: str,
    title: str,
    xlabel: str,
    ylabel: str,
    series: dict,
    logx=True,
    logy=True,
    marker="o",
    vlines=(),
) -> None:
    """One line per entry of `series` = {label: (xs, ys)}; dashed verticals at `vlines`."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=marker, label=str(label))
    for x in vlines:
        ax.axvline(x, linestyle="--", color="gray", linewidth=1)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
        _plain_ticks(ax, [x for xs, _ in series.values() for x in xs])
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def panels(path: str, title: str, xlabel: str, ylabel: str, panel_series: dict) -> None:
    """Side-by-side panels {panel title: {label: (xs, ys)}} sharing axes labels, at most
    three to a row."""
    count = len(panel_series)
    rows, columns = math.ceil(count / 3), min(count, 3)
    fig, axes = _pyplot().subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    for ax, (panel, series) in zip(axes, panel_series.items()):
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", label=str(label))
        ax.set(title=panel, xlabel=xlabel, ylabel=ylabel, xscale="log", yscale="log")
        _plain_ticks(ax, [x for xs, _ in series.values() for x in xs])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)
