"""Rules as pipelines of small transforms.

A transform maps (LayerMeta, Scales) -> Scales. A `Rule` is a named tuple of
transforms applied left to right, starting from the neutral `Scales()`; rules
compose, so `compose(mup, depth_lr(-1.5))` is a rule too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rules.meta import LayerMeta, Scales

Transform = Callable[[LayerMeta, Scales], Scales]


def transform_name(transform: Transform) -> str:
    return getattr(transform, "__name__", repr(transform))


def _defined_at(transform: Transform) -> str:
    code = getattr(transform, "__code__", None)
    return f" ({code.co_filename}:{code.co_firstlineno})" if code else ""


def named(name: str) -> Callable[[Transform], Transform]:
    """Decorator giving a closure a readable name (e.g. `depth_lr(-1.5)`)."""

    def rename(transform: Transform) -> Transform:
        transform.__name__ = name
        transform.__qualname__ = name
        return transform

    return rename


@dataclasses.dataclass(frozen=True)
class Rule:
    """A parametrization: transforms applied in order to the neutral scales."""

    name: str
    transforms: tuple[Transform, ...]
    description: str = ""
    # What a model must have for this rule to mean anything: "residual" (branch
    # multipliers), "base_width" (some dimension that scales with width).
    requires: frozenset[str] = frozenset()

    def __call__(self, meta: LayerMeta, scales: Scales | None = None) -> Scales:
        scales = Scales() if scales is None else scales
        for transform in self.transforms:
            scales = transform(meta, scales)
            if not isinstance(scales, Scales):  # a user's transform: say which one
                raise TypeError(
                    f"transform {transform_name(transform)}{_defined_at(transform)} returned "
                    f"{type(scales).__name__}, not Scales"
                )
        return scales

    @property
    def pipeline(self) -> str:
        """The transforms as text, e.g. `he_init > mup_readout_init > mup_lr`."""
        return " > ".join(transform_name(t) for t in self.transforms)


def compose(
    *parts: Rule | Transform,
    name: str | None = None,
    description: str = "",
    requires: frozenset[str] | set[str] = frozenset(),
) -> Rule:
    """Chain rules and transforms left to right into one `Rule` (requirements add up)."""
    transforms: list[Transform] = []
    needs = set(requires)
    for part in parts:
        if isinstance(part, Rule):
            transforms.extend(part.transforms)
            needs |= part.requires
        elif callable(part):
            transforms.append(part)
        else:
            raise TypeError(f"compose takes rules or transforms, got {type(part).__name__}")
    if name is None:
        name = "+".join(p.name if isinstance(p, Rule) else transform_name(p) for p in parts)
    return Rule(name, tuple(transforms), description, frozenset(needs))
