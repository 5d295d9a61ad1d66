"""Checkpoints with orbax: every N steps and at the end, the last few kept, exact resume.

A checkpoint holds the training state (params, rest, optimizer state) and a JSON `meta`
(the step and the config record). The batch of step s depends only on (seed, s) and every
random key lives in the state, so resuming at step s continues exactly as if never stopped.
Orbax writes each checkpoint to a temporary folder and renames it, so a kill mid-save leaves
the previous checkpoints intact.

Integrity: once orbax has finished a checkpoint, `<step>/integrity.json` is written last
(atomically) with the sha256 of every other file of it. A checkpoint is read only after its
files match that manifest exactly (same names, same digests), so a flipped bit, a truncated or
added file, or a hand-edited meta is refused (status 2, naming the step) and never resumed.
A checkpoint without a manifest (saved before manifests existed, or killed between orbax's
rename and the manifest) is refused the same way: move it away to resume from an earlier one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
from typing import Any

import jax
import numpy as np

from scaling_training import safe_files
from scaling_training.config import FLAG_DEFAULTS
from scaling_training.errors import ConfigError

MANIFEST = "integrity.json"

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

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def verify(self, step: int) -> None:
        """ConfigError naming `step` unless its files match its manifest exactly."""
        problem = manifest_problem(self.step_dir(step))
        if problem:
            raise ConfigError(
                "workdir",
                f"checkpoint of step {step} ({self.step_dir(step)}) {problem}; it is not "
                "used: move that folder away to resume from an earlier checkpoint, or use "
                "another --workdir",
            )

    def read_meta(self, step: int) -> dict:
        """The JSON meta of checkpoint `step`, after `verify`; ConfigError if it cannot be
        read or is not what we write."""
        self.verify(step)
        try:
            restored = self._manager.restore(
                step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore())
            )
            meta = restored["meta"]
        except Exception as e:  # orbax raises many types for a damaged folder
            raise self._unreadable(step, e) from None
        problem = meta_problem(meta, step)
        if problem:
            raise self._unreadable(step, ValueError(problem))
        return dict(meta)

    def restore_state(self, step: int, like: Any, shardings: Any) -> Any:
        """The state of checkpoint `step`, laid out with `shardings`; ConfigError if damaged."""
        self.verify(step)
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
        from scaling_training.interrupts import deferred
        from scaling_training.outputs import WriteError

        # a failed write (a full disk) makes tensorstore's I/O threads report late errors
        # before and after the error reaches us; the WriteError below is the one line the
        # user sees, so the hooks stay quiet from here to the exit unless the save succeeds
        hooks = _quiet_thread_errors()
        with deferred(), _quiet_absl():  # a signal waits for the checkpoint and its manifest
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
                write_manifest(self.step_dir(step))
            except Exception as e:  # orbax wraps OSError in several types
                # the run ends now: its I/O threads' late errors stay quiet to the exit
                raise WriteError(self.step_dir(step), e) from None
            sys.excepthook, threading.excepthook, sys.unraisablehook = hooks

    def close(self) -> None:
        self._manager.close()

    def _unreadable(self, step: int, error: Exception) -> ConfigError:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        return ConfigError(
            "workdir",
            f"checkpoint of step {step} ({self.step_dir(step)}) is unreadable ({reason}); "
            "move it away to resume from an earlier one, or use another --workdir",
        )


def _quiet_thread_errors() -> tuple:
    """Silence the tracebacks that orbax's and tensorstore's I/O threads print when a write
    fails; returns the hooks to put back. Each write still pending when orbax's event loop
    closes calls `loop.call_soon_threadsafe` from a C++ thread; its "Event loop is closed"
    goes to sys.unraisablehook (tensorstore calls PyErr_WriteUnraisable), once per write and
    at any time up to the interpreter's finalization, when those threads can no longer take
    the GIL. The except hooks cover orbax's Python threads."""
    hooks = sys.excepthook, threading.excepthook, sys.unraisablehook
    sys.excepthook = lambda *args: None
    threading.excepthook = lambda args: None
    sys.unraisablehook = lambda args: None
    return hooks


@contextlib.contextmanager
def _quiet_absl():
    """absl's logger (orbax logs through it) shows nothing below CRITICAL inside."""
    import logging

    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _digests(folder: str) -> dict[str, str]:
    """sha256 of every file under `folder` but the manifest, by path relative to it."""
    found = {}
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(here, name)
            rel = os.path.relpath(path, folder)
            if rel == MANIFEST:
                continue
            digest = hashlib.sha256()
            fd = safe_files.open_nofollow(path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            found[rel] = digest.hexdigest()
    return found


def write_manifest(step_dir: str) -> None:
    """Write `step_dir`/integrity.json, the digests of its files, last and atomically."""
    record = {"format": 1, "sha256": _digests(step_dir)}
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    safe_files.write_atomically(os.path.join(step_dir, MANIFEST), text.encode(), sync=True)


def manifest_problem(step_dir: str) -> str | None:
    """What is wrong with checkpoint `step_dir` against its manifest; None when every file
    is there with its digest and nothing else is."""
    special = safe_files.special_entry(step_dir)
    if special:
        return f"holds {special[1]} ({special[0]})"
    try:
        fd = safe_files.open_nofollow(os.path.join(step_dir, MANIFEST), os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            record = json.loads(f.read(1 << 24))
        expected = record["sha256"]
        if record.get("format") != 1 or not isinstance(expected, dict):
            raise ValueError("not a manifest")
    except FileNotFoundError:
        return (
            f"has no {MANIFEST} (saved by a version before checkpoints were verified, or "
            "its save was cut short)"
        )
    except (OSError, ValueError, KeyError, TypeError):  # UnicodeDecodeError is a ValueError
        return f"has a damaged {MANIFEST}"
    try:
        found = _digests(step_dir)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            return f"lacks its file {name}"
        if name not in expected:
            return f"holds a file its manifest does not list ({name})"
        if found[name] != expected[name]:
            return f"failed its integrity check: {name} is not what was saved"
    return None


def meta_problem(meta: Any, step: int) -> str | None:
    """What makes a checkpoint's meta not ours (it is untrusted input), or None."""
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        return "its meta is not a record with a config"
    if type(meta.get("step")) is not int or meta["step"] != step:
        return f"its meta names step {meta.get('step')!r}, not {step}"
    config = meta["config"]
    for key, value in config.items():  # a differing value is check_same_config's refusal
        if not isinstance(value, (str, int, float, bool, type(None))):
            return f"its meta's config has {key}={value!r}"
    if type(config.get("steps")) is not int or config["steps"] < 1:
        return f"its meta's config has steps={config.get('steps')!r}"
    return None


# Each setting's default: what the trainer did before that setting existed.
_DEFAULTS = FLAG_DEFAULTS


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
    check_same_source(saved, current, directory)


def check_same_source(saved: dict, current: dict, directory: str) -> None:
    """--data_dir may move (the same prepared files elsewhere), but an offline set read from
    tensorflow-datasets files differs in its last bits from the one generated in memory, so
    adding or dropping --data_dir on resume would continue a run on other data."""
    import scaling_data as data

    if current.get("dataset") not in data.SOURCES:
        return
    before, now = bool(saved.get("data_dir")), bool(current.get("data_dir"))
    if before != now:
        read = "from tensorflow-datasets files (--data_dir)" if before else "generated in memory"
        raise ConfigError(
            "data_dir",
            f"is {current.get('data_dir')!r} but the unfinished run in {directory} read "
            f"{current['dataset']} {read}; the two differ in their last bits, so resume with "
            f"{'a --data_dir' if before else 'no --data_dir'}, or use another --workdir",
        )
