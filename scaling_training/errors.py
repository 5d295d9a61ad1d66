"""The one error type of the training package: a bad setting, named by its flag.

Raised by the library parts (sharding plans, checkpoints, multi-host start-up, the run
itself); train.py turns it into `error: --flag: message` and exit status 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting, reported as `--flag: message` with exit status 2."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag
