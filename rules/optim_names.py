"""Optimizer names and the family whose LR exponents each follows (no JAX import).

Sign- or second-moment-normalised updates (Adam, Lion) are "adam"; raw-gradient
updates (SGD, momentum) are "sgd". "muon" orthogonalises hidden matrices and gives the
other parameters to Adam (rules/muon_family.py).
"""

OPTIMIZERS: dict[str, str] = {
    "sgd": "sgd",
    "momentum": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "lion": "adam",
    "muon": "muon",
    "adafactor": "adam",  # factored second moments: an entry-wise normalised step, as Adam's
}
