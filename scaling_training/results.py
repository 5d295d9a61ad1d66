"""What a run returns and writes to summary.json: last and best test metrics."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class RunResult:
    steps_done: int
    diverged: bool
    test_loss: float | None  # the last evaluation's (over the whole test split)
    test_accuracy: float | None
    seconds: float
    best_test_loss: float | None = None  # the lowest over the run's evaluations
    best_test_accuracy: float | None = None  # the highest over the run's evaluations
    best_test_accuracy_step: int | None = None


def best_metrics(records: list[dict]) -> dict:
    """best_test_loss, best_test_accuracy (and its step) over metrics.jsonl's records."""
    tests = [r for r in records if r.get("test_loss") is not None and math.isfinite(r["test_loss"])]
    if not tests:
        return {}
    best = max(tests, key=lambda r: (r["test_accuracy"], -r["step"]))
    return {
        "best_test_loss": min(r["test_loss"] for r in tests),
        "best_test_accuracy": best["test_accuracy"],
        "best_test_accuracy_step": best["step"],
    }
