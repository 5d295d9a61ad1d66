"""Checkpoints with orbax: every N steps and at the end, the last few kept, exact resume.

A checkpoint holds the training state (params, rest, optimizer state) and a JSON `meta`
(the step and the config record). The batch of step s depends only on (seed, s) and every
random key lives in the state, so resuming at step s continues exactly as if never stopped.
Orbax writes each checkpoint to a temporary folder and renames it, so a kill mid-save leaves
the previous checkpoints intact.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from scaling_training.config import TrainConfig
from scaling_training.errors import ConfigError

# Settings that change where or how often things are written, or the device layout,
# but not the trajectory: a resumed run may change them.
FREE_TO_CHANGE = frozenset(
    {
        "workdir",
        "log_every",
        "mesh",
        "fsdp",
        "checkpoint_every",
        "keep_checkpoints",
        "tensorboard",
        "plots",
        "data_dir",
        "coordinator_address",
        "num_processes",
        "process_id",
        "connect_timeout",
    }
)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _savable(tree: Any) -> Any:
    """Typed PRNG keys as their raw uint32 data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract(tree: Any, shardings: Any) -> Any:
    def leaf(x, sharding):
        x = jax.random.key_data(x) if _is_key(x) else x
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

    return jax.tree.map(leaf, tree, shardings)


def _rewrap_keys(restored: Any, like: Any) -> Any:
    def leaf(x, ref):
        return jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref) else x

    return jax.tree.map(leaf, restored, like)


class Checkpoints:
    """`workdir/checkpoints/<step>/{state,meta}`, the newest `keep` of them."""

    def __init__(self, workdir: str, keep: int):
        import orbax.checkpoint as ocp  # heavy: imported only when checkpointing

        self._ocp = ocp
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=False, enable_async_checkpointing=False
            ),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def read_meta(self, step: int) -> dict:
        """The JSON meta of checkpoint `step`; ConfigError if it cannot be read."""
        try:
            restored = self._manager.restore(
                step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore())
            )
            meta = dict(restored["meta"])
            int(meta["step"]), dict(meta["config"])  # noqa: B018 (shape check)
        except Exception as e:  # orbax raises many types for a damaged folder
            raise self._unreadable(step, e) from None
        return meta

    def restore_state(self, step: int, like: Any, shardings: Any) -> Any:
        """The state of checkpoint `step`, laid out with `shardings`; ConfigError if damaged."""
        try:
            restored = self._manager.restore(
                step,
                args=self._ocp.args.Composite(
                    state=self._ocp.args.StandardRestore(_abstract(like, shardings))
                ),
            )
            state = _rewrap_keys(restored["state"], like)
            for leaf in jax.tree.leaves(state):
                if leaf.dtype.kind == "f" and not bool(jax.numpy.isfinite(leaf).all()):
                    raise ValueError("non-finite values")
        except Exception as e:
            raise self._unreadable(step, e) from None
        return state

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Save checkpoint `step`; outputs.WriteError when it cannot be written (orbax writes
        to a temporary folder first, so the earlier checkpoints stay intact)."""
        from scaling_training.outputs import WriteError

        try:
            self._manager.save(
                step,
                args=self._ocp.args.Composite(
                    state=self._ocp.args.StandardSave(_savable(state)),
                    meta=self._ocp.args.JsonSave(meta | {"step": step}),
                ),
                force=True,
            )
            self._manager.wait_until_finished()
        except Exception as e:  # orbax wraps OSError in several types
            raise WriteError(os.path.join(self.directory, str(step)), e) from None

    def close(self) -> None:
        self._manager.close()

    def _unreadable(self, step: int, error: Exception) -> ConfigError:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        return ConfigError(
            "workdir",
            f"checkpoint {os.path.join(self.directory, str(step))} is unreadable ({reason}); "
            "move it away to resume from an earlier one, or use another --workdir",
        )


# Each setting's default: what the trainer did before that setting existed.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _added_since(key: str, value) -> bool:
    """True when `key` is a setting newer than a checkpoint and `value` is its default: the
    run was made before the setting existed, and the default does what the old code did."""
    return _DEFAULTS.get(key) is not None and _DEFAULTS[key] == value


def check_same_config(saved: dict, current: dict, directory: str) -> None:
    """ConfigError naming the first setting that differs from the checkpoint's. A setting
    the checkpoint does not know (added to the trainer later) matches when it has its
    default value, so runs saved by an older version resume."""
    for key in sorted(set(saved) | set(current)):
        if key in FREE_TO_CHANGE:
            continue
        if key not in saved and _added_since(key, current.get(key)):
            continue
        if saved.get(key) != current.get(key):
            raise ConfigError(
                key,
                f"is {current.get(key)!r} but the unfinished run in {directory} used "
                f"{saved.get(key)!r}; rerun with its flags to resume, or use another --workdir",
            )
