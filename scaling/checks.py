"""`python -m scaling`'s checks before a probe runs, and its outputs written without loss.

Every flag is checked before any measurement (a bad one is `ConfigError(flag, message)`,
one line and status 2). The dataset is loaded by scaling_training/datasets.py and memory
counted by scaling_training/sizes.py, as for train.py. Results never overwrite earlier ones
silently: an earlier PROBE.json / PROBE.png is moved to OUT/archive/<n>/ first. A finished
measurement is never lost to an output error: when OUT cannot take it, the JSON goes to a
temporary file that is named.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable

from scaling_training import safe_files
from scaling_training.errors import ConfigError

MAX_STEPS = 10**6  # a probe trains small grids; more steps are a typo


def check_numbers(probe: str, lr: float, lrs: tuple[float, ...], steps: int, threshold: float):
    """Learning rates positive and finite, steps in range, maxlr's threshold an accuracy."""
    if not 0 < lr < math.inf:
        raise ConfigError("lr", f"must be > 0 and finite, got {lr}")
    for value in lrs:
        if not 0 < value < math.inf:
            raise ConfigError("lrs", f"learning rates must be > 0 and finite, got {value}")
    if not 0 <= steps <= MAX_STEPS:
        raise ConfigError(
            "steps", f"must be in [0, {MAX_STEPS}] (0 = the probe's default), got {steps}"
        )
    if not 0 < threshold <= 1:
        raise ConfigError("threshold", f"is a test accuracy in (0, 1], got {threshold}")


def check_layers(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError("layers", f"{pattern!r} is not a regular expression ({e})") from None


def check_out(out: str, probe: str = "") -> None:
    """OUT is a folder we can write into (created later, when results exist), holding no
    links, special files, or a PROBE.json that is not ours."""
    if not out.strip():
        raise ConfigError("out", "is empty; give an output folder")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("out", f"{out!r} is a file, not a folder; pick another")
    archive = os.path.join(out, "archive")
    if os.path.exists(archive) and not os.path.isdir(archive):
        raise ConfigError("out", f"{archive!r} is a file, but earlier results are archived there")
    refused = safe_files.refusal(out, "out")
    if refused:
        raise ConfigError("out", refused)
    earlier = os.path.join(out, f"{probe}.json")
    if probe and os.path.isfile(earlier) and not _is_probe_record(earlier, probe):
        raise ConfigError(
            "out", f"{earlier!r} is not a result of the {probe} probe, so it is not archived; "
            "move it away or pick another folder",
        )  # fmt: skip
    existing = os.path.abspath(out)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    try:  # a real write (os.access says yes to root, and on read-only mounts of some kinds)
        fd, probe_file = tempfile.mkstemp(prefix=".scaling-write-check-", dir=existing)
        os.close(fd)
        os.remove(probe_file)
    except OSError as e:
        raise ConfigError(
            "out", f"cannot write to {existing!r} ({e.strerror or e}); pick another folder"
        ) from None


def _is_probe_record(path: str, probe: str) -> bool:
    import json

    try:
        with open(path, "rb") as f:
            record = json.loads(f.read(1 << 26))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("probe") == probe


WORK_LIMIT = 1e19  # floating-point operations: ~3 h at 1 PFLOP/s, months on a CPU


def check_fits(
    model: str,
    widths,
    depths,
    members: int,
    batch_size: int,
    input_shape,
    num_classes: int,
    blame: str = "seeds",
) -> None:
    """ConfigError naming --widths or --depths when the largest model, `members` of it
    trained at once, cannot fit in memory (a lower bound, as for train.py:
    scaling_training/sizes.py), or `blame` (--seeds or --lrs) when even the smallest sizes
    cannot hold that many members at once."""
    from scaling_training import sizes

    def need(width: int, depth: int) -> int:
        params, activations = sizes.estimate(
            model, width, depth, batch_size, 3, tuple(input_shape), num_classes
        )
        return sizes.step_bytes(params, activations, members)

    have, where = sizes.available_bytes()
    total = need(max(widths), max(depths))
    if total <= have:
        return
    smallest = need(min(widths), min(depths))
    if members > 1 and smallest > have:
        raise ConfigError(
            blame,
            f"{members} models trained at once need at least {smallest / 2**30:,.1f} GiB even "
            f"at the smallest size, more than the {have / 2**30:,.1f} GiB of {where}; use "
            "fewer seeds or learning rates",
        )
    flag = "widths" if need(min(widths), max(depths)) < need(max(widths), min(depths)) else "depths"
    raise ConfigError(
        flag,
        f"the largest model needs at least {total / 2**30:,.1f} GiB, more than the "
        f"{have / 2**30:,.1f} GiB of {where}; use smaller sizes",
    )


def check_cost(
    model: str, widths, depths, members, batch_size, steps, input_shape, num_classes, blame
) -> None:
    """ConfigError when the probe's training cannot finish: about 6 x params x batch x steps
    operations per model and size, over every size and member (seed x LR)."""
    from scaling_training import sizes

    work = 0.0
    for width in widths:
        for depth in depths:
            params, _ = sizes.estimate(
                model, width, depth, batch_size, 3, tuple(input_shape), num_classes
            )
            work += 6.0 * params * batch_size * max(steps, 1) * members
    if work <= WORK_LIMIT:
        return
    days = work / 1e15 / 86400
    flag = blame if members > 1 else "widths"
    raise ConfigError(
        flag,
        f"the probe would take about {work:.2g} floating-point operations ({days:,.1f} days "
        f"at 1 PFLOP/s; limit {WORK_LIMIT:.0e}); use fewer seeds, learning rates or sizes",
    )


def archive_previous(out: str, names: tuple[str, ...]) -> str | None:
    """Move earlier `names` in `out` to out/archive/<n>/; the folder, or None if none."""
    present = [n for n in names if os.path.exists(os.path.join(out, n))]
    if not present:
        return None
    n = 1
    while os.path.exists(os.path.join(out, "archive", str(n))):
        n += 1
    target = os.path.join(out, "archive", str(n))
    os.makedirs(target)
    for name in present:
        shutil.move(os.path.join(out, name), os.path.join(target, name))
    return target


def write_results(
    out: str, probe: str, text: str, plot: Callable[[str], None], echo=print
) -> tuple[str, str]:
    """Archive earlier results, write `text` to OUT/PROBE.json, then the plot OUT/PROBE.png.
    On an OSError the JSON is kept in a temporary file and the OSError says where."""
    json_path = os.path.join(out, f"{probe}.json")
    png_path = os.path.join(out, f"{probe}.png")
    try:
        os.makedirs(out, exist_ok=True)
        archived = archive_previous(out, (f"{probe}.json", f"{probe}.png"))
        if archived:
            echo(f"earlier {probe} results in {out} moved to {archived}")
        _write_atomically(json_path, text)
    except OSError as e:
        kept = _fallback(probe, text)
        raise OSError(
            f"cannot write {json_path} ({e.strerror or e}); the measurement is saved in {kept}"
        ) from None
    try:
        with safe_files.temporary_beside(png_path, suffix=".png") as tmp:
            plot(tmp)
            os.replace(tmp, png_path)
    except OSError as e:
        raise OSError(
            f"cannot write {png_path} ({e.strerror or e}); the measurement is in {json_path}"
        ) from None
    return json_path, png_path


def _write_atomically(path: str, text: str) -> None:
    safe_files.write_atomically(path, text.encode())


def _fallback(probe: str, text: str) -> str:
    """Save `text` in the first temporary place that takes it; its path ('nowhere' if none)."""
    for folder in (tempfile.gettempdir(), os.getcwd(), os.path.expanduser("~")):
        try:
            fd, path = tempfile.mkstemp(prefix=f"scaling-{probe}-", suffix=".json", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return "nowhere (every fallback failed too)"
