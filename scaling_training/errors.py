"""The one error path of both command lines (train.py and `python -m scaling`).

A bad setting is `ConfigError(flag, message)`, raised by whatever finds it (a flag check,
a sharding plan, a checkpoint, a probe that cannot run as asked); the CLI's `main` turns it
into `fail(str(error))`: one line on stderr, `error: --flag: message`, and status
EXIT_BAD_INPUT. The library's own `rules.RuleError` reaches the user the same way, through
`rule_error`. Every exit status of both CLIs is named here; `parse_flags` is their
shared absl parsing.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2  # a flag, path, dataset, rule or size refused; nothing written
EXIT_DIVERGED = 3  # train.py: the loss went non-finite (metrics up to then are written)
EXIT_WRITE_FAILED = 4  # an output could not be written (disk full, I/O error, ...)
# Ctrl-C and SIGTERM: 128 + the signal's number, as a shell reports them.
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class ConfigError(ValueError):
    """A bad setting, reported as `--flag: message` with exit status 2. `flag` is empty for
    a request that is wrong as a whole (no one flag to blame): the message alone."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}" if flag else message)
        self.flag = flag


def rule_error(error: Exception, model: str) -> ConfigError:
    """A `rules.RuleError` (the rule does not fit the model) as the CLIs report it."""
    return ConfigError("rule", f"{error} (--model={model})")


def parse_flags(argv: list[str], doc: str) -> list[str]:
    """absl parsing for a CLI whose help text is `doc`: a bad flag is one line and status 2,
    not a usage dump, and --help exits 0 (absl's own --help exits 1)."""
    from absl import flags

    if any(arg in ("--help", "-h", "--helpshort", "-?") for arg in argv[1:]):
        print(doc.strip() + "\n" + flags.FLAGS.main_module_help())
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e}; see --help")


def fail(message: str, status: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: message` on one line of stderr and exit with `status`."""
    from scaling_training.messages import escaped  # a value's newline stays on one line

    print(f"error: {escaped(message)}", file=sys.stderr)
    sys.exit(status)
