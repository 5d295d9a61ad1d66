"""One run per workdir (a lock), whole metrics lines, and a full disk as status 4."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from cli_cases import LIMITED

from scaling_training import outputs
from scaling_training import workdir as workdir_lock
from scaling_training.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(width=8, base_width=8, depth=1, batch_size=8, plots=False)
SMALL = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]


def train(*args, timeout=300, **kwargs):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def train_here(workdir, **settings) -> str:
    """A run whose promise is its outputs, in this process (no interpreter start-up): the
    lines it printed; an error escapes as an exception."""
    from scaling_training.config import TrainConfig
    from scaling_training.loop import train as run

    lines = []
    config = TrainConfig.from_flags(**SETTINGS, **settings, workdir=str(workdir))
    run(config, echo=lines.append)
    return "\n".join(lines)


# -- the lock -------------------------------------------------------------------------------


def test_lock_refuses_a_second_holder_and_cleans_up(tmp_path):
    work = tmp_path / "new" / "run"
    with workdir_lock.hold(str(work)) as stale:
        assert stale is None
        lock = (work / ".lock").read_text().split()
        assert lock == [str(os.getpid()), socket.gethostname()]
        refused = pytest.raises(ConfigError, match=f"in use by pid {os.getpid()} on")
        with refused, workdir_lock.hold(str(work)):
            pass
        assert (work / ".lock").exists()  # the refused run left the holder's lock alone
    assert os.listdir(work) == []  # released: the lock file is gone, the folder stays

    # A failed run removes the folders it created, and only those.
    with pytest.raises(RuntimeError), workdir_lock.hold(str(tmp_path / "a" / "b")):
        raise RuntimeError("the run failed")
    assert not (tmp_path / "a").exists()


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text("999999 gone-host\n")  # no process holds its flock
    with workdir_lock.hold(str(tmp_path)) as stale:
        assert stale == "999999 gone-host"
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())


def test_two_processes_one_workdir(tmp_path):
    """A live run holds its workdir: a second is refused naming it; once the first is
    killed (-9, no clean-up), the next run takes the stale lock over and runs."""
    work = tmp_path / "w"
    first = subprocess.Popen(
        [sys.executable, "train.py", *SMALL, "--steps=2000000", "--checkpoint_every=0"]
        + [f"--workdir={work}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (work / "metrics.jsonl").exists():  # training has started
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.5)
        host = socket.gethostname()
        second = train(*SMALL, "--steps=5", f"--workdir={work}")
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"in use by pid {first.pid} on {host}" in lines[0]
        assert "--workdir" in lines[0]
        assert first.poll() is None  # the first run goes on undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = train_here(work, steps=5, log_every=5)  # the kill was a real process's
    assert f"took over the lock of a run that died ({first.pid} {host})" in third
    assert not (work / ".lock").exists()
    assert (work / "archive" / "1" / "metrics.jsonl").exists()  # the killed run's metrics


# -- whole lines ------------------------------------------------------------------------------


def test_torn_tail_is_dropped_on_opening(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "train_lo')  # killed mid-write
    log = outputs.MetricsLog(str(path))
    log.write({"step": 3, "train_loss": 1.5})
    log.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 1},
        {"step": 2},
        {"step": 3, "train_loss": 1.5},
    ]
    path.write_text('{"step": 1, "tra')  # no whole line at all
    assert outputs.drop_torn_tail(str(path)) == len('{"step": 1, "tra')
    assert path.read_text() == ""


def test_full_disk_is_status_4_and_leaves_whole_lines_and_checkpoints(tmp_path):
    """A file-size limit stands in for a full disk: metrics.jsonl (~70 bytes a step) hits
    10 kB near step 140, checkpoints (< 8 kB a file) are written every 20 steps."""
    work = tmp_path / "w"
    args = [*SMALL, "--steps=200", "--checkpoint_every=20", "--log_every=20", "--eval_every=100"]
    # no JAX compilation cache (tests/conftest.py sets one): under the limit its writes
    # would fail too, with a warning of JAX's on stderr
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    full = subprocess.run(
        [sys.executable, "-c", LIMITED, "10000", *args, f"--workdir={work}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert full.returncode == 4, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith("error: cannot write") and "metrics.jsonl" in lines[0]
    text = (work / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    steps = [json.loads(line)["step"] for line in text.splitlines()]
    assert 100 < max(steps) < 200
    # Room again: the run resumes from its last checkpoint and finishes (in this process:
    # the full disk was a real process's).
    again = train_here(work, steps=200, checkpoint_every=20, log_every=20, eval_every=100)
    resumed = max(s for s in range(20, 200, 20) if s <= max(steps))
    assert f"resuming from the checkpoint of step {resumed}" in again
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r] == list(range(1, 201))


# -- probe results ---------------------------------------------------------------------------


def test_probe_results_are_archived_not_overwritten(tmp_path):
    from scaling.checks import write_results

    def plot(path):
        with open(path, "w") as f:
            f.write("png")

    for text in ('{"run": 1}', '{"run": 2}'):
        write_results(str(tmp_path), "coord", text, plot, echo=lambda _: None)
    assert (tmp_path / "coord.json").read_text() == '{"run": 2}'
    assert (tmp_path / "archive" / "1" / "coord.json").read_text() == '{"run": 1}'
    assert (tmp_path / "archive" / "1" / "coord.png").exists()


def test_probe_results_survive_an_output_error(tmp_path, monkeypatch):
    from scaling import checks

    monkeypatch.setattr(checks.tempfile, "tempdir", str(tmp_path / "fallback"))
    (tmp_path / "fallback").mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where OUT's parent should be")
    with pytest.raises(OSError, match="the measurement is saved in") as error:
        checks.write_results(str(blocker / "out"), "maxlr", '{"eta": 0.1}', print)
    saved = str(error.value).rsplit(" ", 1)[-1]
    assert saved.startswith(str(tmp_path / "fallback"))
    with open(saved) as f:
        assert f.read() == '{"eta": 0.1}'


def test_failed_run_restores_a_stale_lock_as_it_was(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text("999999 gone-host\n")
    os.utime(lock, ns=(1_000_000_000, 2_000_000_000))
    with pytest.raises(ConfigError), workdir_lock.hold(str(tmp_path)):
        raise ConfigError("lr", "refused after the lock was taken")
    assert lock.read_text() == "999999 gone-host\n"
    assert lock.stat().st_mtime_ns == 2_000_000_000


def test_tensorboard_write_failure_is_a_write_error(tmp_path):
    from scaling_training import progress

    (tmp_path / "tensorboard").write_text("a file where the event folder should be")
    with pytest.raises(outputs.WriteError, match="tensorboard"):
        progress.TensorBoard(str(tmp_path))
