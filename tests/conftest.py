"""Suite-wide set-up: slow tests on request, and one JAX compilation cache per session."""

import os
import shutil
import tempfile

# JAX's persistent compilation cache, shared by the session's processes: the pytest workers
# and the many train.py / `python -m scaling` subprocesses compile the same small programs
# (model inits, train chunks, evaluations); every process after the first loads them from
# disk instead of compiling again. The cache lives and dies with the session (a fresh folder,
# removed at the end), so no run ever reads another session's entries. Set before any test
# module imports jax; subprocesses inherit it through the environment.
_CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
_OWN_CACHE = None
if _CACHE_VARIABLE not in os.environ:  # xdist workers inherit the controller's
    _OWN_CACHE = tempfile.mkdtemp(prefix="scaling-rules-jax-cache-")
    os.environ[_CACHE_VARIABLE] = _OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # eager ops compile fast
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


# LLVM's optimisations off for the session's XLA programs (XLA's own graph passes still
# run): the suite is bound by compiling hundreds of small programs, which this makes ~6x
# faster, while the programs run on tiny models. The numbers agree with the optimised
# build's to ~1e-9 (the lm run of test_data_text: test loss 1.8593586864 vs 1.8593586839);
# every comparison in the suite is between programs built the same way. A user's own
# XLA_FLAGS that set the level win.
_LEVEL = "--xla_backend_optimization_level"
if _LEVEL not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_LEVEL}=0".strip()


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only when asked for: `pytest -m slow`."""
    import pytest

    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow; run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
