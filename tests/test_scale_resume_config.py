"""Resuming checks the checkpoint's settings; settings newer than the checkpoint resume at
their defaults (a run saved before --schedule existed trained with a constant lr)."""

import pytest

from scaling_training.checkpoint import check_same_config
from scaling_training.config import ConfigError, TrainConfig, config_record


def record(**overrides) -> dict:
    return config_record(TrainConfig.from_flags(**overrides))


def test_same_settings_resume():
    check_same_config(record(), record(), "wd")


def test_changed_setting_is_named():
    with pytest.raises(ConfigError) as error:
        check_same_config(record(lr=0.01), record(lr=0.02), "wd")
    assert error.value.flag == "lr"


def test_settings_added_since_the_checkpoint_resume_at_their_defaults():
    old = {k: v for k, v in record().items() if k not in ("schedule", "clip_norm", "dtype")}
    check_same_config(old, record(), "wd")


def test_setting_added_since_but_not_at_its_default_is_refused():
    old = {k: v for k, v in record().items() if k != "schedule"}
    with pytest.raises(ConfigError) as error:
        check_same_config(old, record(schedule="cosine"), "wd")
    assert error.value.flag == "schedule"
