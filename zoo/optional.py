"""Optional layers: a layer that is switched off is the identity, not None.

So a model's forward pass reads the same with or without dropout, a norm or a shortcut
projection (`h = self.norm(h)`), and no site checks `if m is None`.
"""

from __future__ import annotations

from typing import Any

from flax import nnx


class Identity(nnx.Module):
    """x -> x; no parameters, no state, no keys drawn."""

    def __call__(self, x: Any) -> Any:
        return x


def dropout(rate: float, *, rngs: nnx.Rngs) -> nnx.Module:
    """nnx.Dropout at `rate`; the identity at rate 0 (which draws no keys)."""
    return nnx.Dropout(rate, rngs=rngs) if rate else Identity()
