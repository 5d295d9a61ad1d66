"""A dataset by name for either command line, with a bad or unprepared one a ConfigError.

train.py (through scaling_training/loop.py) and `python -m scaling` both load here, so an
unknown name, tfds files that are absent, and files that cannot be read are refused with the
same message, naming --dataset (or --data_dir, when one was given).
"""

from __future__ import annotations

import scaling_data as data
from scaling_training.errors import ConfigError


def load(name: str, data_dir: str = "", seq_len: int = 64) -> data.Dataset:
    """`scaling_data.load(name, data_dir, seq_len)`; ConfigError when the name is unknown
    or the files are missing or unreadable. A failure of a set generated in memory is a
    bug, not a bad input: it propagates."""
    if name not in data.names():
        raise ConfigError(
            "dataset", f"unknown dataset {name!r}; choose one of: {', '.join(data.names())}"
        )
    flag = "data_dir" if data_dir else "dataset"
    try:
        return data.load(name, data_dir, seq_len=seq_len)
    except data.TfdsMissing as e:  # says how to prepare it
        raise ConfigError(flag, str(e)) from None
    except Exception as e:  # garbage or unreadable files, a folder that cannot be prepared
        if not data_dir and name not in data.TFDS_DATASETS:
            raise  # generated in memory: a failure there is ours
        from scaling_training.messages import one_line

        where = repr(data_dir) if data_dir else "the default tfds data_dir"
        raise ConfigError(
            flag,
            f"cannot read or prepare {name} in {where} ({one_line(e)}); "
            "prepare it again in a writable folder",
        ) from None
