"""Sharding over 8 CPU devices and a 2-process multi-host run, each in fresh subprocesses
(XLA_FLAGS must be set before jax starts; the rest of the suite keeps one device)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_with_devices(n: int) -> dict:
    flags = os.environ.get("XLA_FLAGS", "")  # keeps the suite's own (tests/conftest.py)
    return os.environ | {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}"}


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "scripts", "multidevice.py"),
         str(tmp_path_factory.mktemp("md"))],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=env_with_devices(8),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_losses_of_one(eight_devices):
    assert eight_devices["devices"] == 8
    one = np.array(eight_devices["losses"]["data:1"])
    assert len(one) == 12 and np.isfinite(one).all()
    for mesh in ("data:8", "data:4,model:2"):
        np.testing.assert_allclose(eight_devices["losses"][mesh], one, rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            eight_devices["test"][mesh], eight_devices["test"]["data:1"], rtol=0, atol=1e-5
        )


def _nan(rows):
    return np.array([[np.nan if v is None else v for v in row] for row in rows])


def test_sweeps_on_eight_devices_equal_the_one_device_sweep(eight_devices):
    """Members split over `members`, batches over `data`, or both: every member's losses,
    test metrics and divergence equal the one-device sweep's."""
    one = eight_devices["sweeps"]["data:1"]
    assert one["diverged"] == [[False, True, False, False]] * 2
    assert np.isfinite(_nan(one["final_train_loss"])[:, [0, 2, 3]]).all()
    for mesh in ("data:8", "members:8", "members:4,data:2"):
        sweep = eight_devices["sweeps"][mesh]
        assert sweep["diverged"] == one["diverged"], mesh
        assert sweep["diverged_at_step"] == one["diverged_at_step"], mesh
        for key in ("final_train_loss", "test_loss", "test_accuracy"):
            np.testing.assert_allclose(
                _nan(sweep[key]), _nan(one[key]), rtol=0, atol=1e-6, err_msg=f"{mesh} {key}"
            )
        assert sweep["best_lr"] == one["best_lr"]


def test_fsdp_splits_parameters_and_replication_does_not(eight_devices):
    # data:4,model:2 with FSDP: a 32x32 kernel is cut in 2 along one dim and 4 along the other.
    assert sorted(eight_devices["fsdp_shard_shape"]) == [8, 16]
    assert eight_devices["replicated_shard_shape"] == [32, 32]


def test_mesh_errors_name_the_flag(eight_devices):
    errors = eight_devices["errors"]
    assert errors["data:16"].startswith("--mesh:") and "16 devices" in errors["data:16"]
    assert errors["data:8"].startswith("--batch_size:") and "30" in errors["data:8"]
    assert "twice" in errors["data:2,model:2,data:2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# tests/scripts/multidevice.py's `small` run (its checkpoint_every=0 aside, which changes no
# number): its one-device losses and sweep are the reference the two-process runs must equal.
SETTINGS = dict(
    width=32, base_width=16, depth=2, steps=12, eval_every=6, log_every=6, batch_size=32,
    dataset="teacher", plots=False,
)  # fmt: skip
SMALL = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]


def test_two_processes_train_like_one(tmp_path, eight_devices):
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "train.py",
                *SMALL,
                "--mesh=data:4",
                f"--workdir={tmp_path / 'mh'}",
                "--num_processes=2",
                f"--process_id={i}",
                f"--coordinator_address=127.0.0.1:{port}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_with_devices(2),
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "mesh data:4 (4 cpu devices, 2 processes)" in outs[0][0]
    assert "done:" in outs[0][0] and "done:" not in outs[1][0]  # only process 0 prints

    # the same settings on one device: multidevice.py's data:1 run
    records = [json.loads(line) for line in (tmp_path / "mh" / "metrics.jsonl").open()]
    assert len(records) == 12 + 2
    mh = [r["train_loss"] for r in records if "train_loss" in r]
    np.testing.assert_allclose(mh, eight_devices["losses"]["data:1"], rtol=0, atol=1e-5)
    mh_test = [r["test_loss"] for r in records if "test_loss" in r]
    np.testing.assert_allclose(mh_test, eight_devices["test"]["data:1"], rtol=0, atol=1e-5)
    # Both processes resumable: the final checkpoint was written by the pair.
    assert (tmp_path / "mh" / "checkpoints" / "12").is_dir()


def test_two_processes_sweep_like_one(tmp_path, eight_devices):
    """A sweep's members split over 2 processes x 2 devices equal the one-device sweep."""
    port = free_port()
    sweep = ["--optimizer=sgd", "--lrs=0.03,1e5,0.3,0.1", "--seeds=2", "--eval_every=12"]
    sweep += ["--mesh=members:4"]  # multidevice.py's sweep: 8 members
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "train.py",
                *SMALL,
                *sweep,
                f"--workdir={tmp_path / 'mh'}",
                "--num_processes=2",
                f"--process_id={i}",
                f"--coordinator_address=127.0.0.1:{port}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_with_devices(2),
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "mesh members:4 (4 cpu devices, 2 processes)" in outs[0][0]
    assert "done:" in outs[0][0] and "done:" not in outs[1][0]

    mh = json.loads((tmp_path / "mh" / "sweep.json").read_text())
    one = eight_devices["sweeps"]["data:1"]  # the same sweep on one device
    assert mh["diverged"] == one["diverged"] == [[False, True, False, False]] * 2
    assert mh["diverged_at_step"] == one["diverged_at_step"]
    for key in ("final_train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(_nan(mh[key]), _nan(one[key]), rtol=0, atol=1e-6)
