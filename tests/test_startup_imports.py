"""`train.py --help` and flag validation stay light: no jax, flax, optax or plotting imports
(they cost ~1.5 s; BENCHMARKS.md section 7 holds --help to 1.5 s)."""

import subprocess
import sys

HEAVY = ("jax", "jaxlib", "flax", "optax", "orbax", "matplotlib", "sklearn", "mnist1d")

CHECK = f"""
import sys
import train
from scaling_training import config, validation
validation.validate(config.TrainConfig.from_flags())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(",".join(heavy))
"""


def test_train_module_and_validation_import_no_heavy_packages():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"
