"""Activation gains: the factor g in a He init Var = g / fan_in.

g = 1 / E[phi(z)^2] for z ~ N(0, 1), so that a layer reading phi of unit-variance
pre-activations keeps unit variance. That gives exactly 2 for ReLU and 1 for the
identity; GELU and tanh are computed once by Gauss-Hermite quadrature.
"""

from __future__ import annotations

import math

import numpy as np


def _second_moment(phi) -> float:
    nodes, weights = np.polynomial.hermite_e.hermegauss(101)
    return float(np.sum(weights * phi(nodes) ** 2) / math.sqrt(2 * math.pi))


def _gelu(z):
    from math import erf

    return z * 0.5 * (1.0 + np.vectorize(erf)(z / math.sqrt(2.0)))


GAINS: dict[str, float] = {
    "relu": 2.0,
    "linear": 1.0,
    "gelu": 1.0 / _second_moment(_gelu),
    "tanh": 1.0 / _second_moment(np.tanh),
}


def gain(activation: str) -> float:
    """The He-init gain of `activation`; raises ValueError for an unknown name."""
    try:
        return GAINS[activation]
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of: {', '.join(GAINS)}"
        ) from None
