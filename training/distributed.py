"""Multi-host start-up: `jax.distributed.initialize` before anything touches a device.

A coordinator that cannot be reached makes JAX's C++ client abort the process (SIGABRT and
a C++ trace) once its timeout runs out, which Python cannot catch. So the coordinator's
address is probed first with plain sockets, for at most `--connect_timeout` seconds, and a
failure is one line and status 2.
"""

from __future__ import annotations

import socket
import time

from training.config import ConfigError, TrainConfig


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def check_coordinator(config: TrainConfig, poll_s: float = 0.5) -> None:
    """Process 0: the address must be bindable here. Others: it must accept a connection
    within `config.connect_timeout` seconds. ConfigError otherwise."""
    host, port = _split(config.coordinator_address)
    if config.process_id == 0:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(infos[0][4])
        except OSError as e:
            raise ConfigError(
                "coordinator_address",
                f"process 0 cannot listen on {config.coordinator_address} ({e.strerror or e}); "
                "give an address of this host and a free port",
            ) from None
        return
    deadline = time.monotonic() + config.connect_timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(poll_s, 1.0)):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    "coordinator_address",
                    f"no coordinator at {config.coordinator_address} after "
                    f"{config.connect_timeout} s ({e.strerror or e}); start process 0 first "
                    "or raise --connect_timeout",
                ) from None
            time.sleep(poll_s)


def initialize(config: TrainConfig) -> None:
    """Join the run's processes (no-op for one process). Each process then sees every
    device of the run in `jax.devices()` and feeds only its own devices' data."""
    if config.num_processes == 1:
        return
    check_coordinator(config)
    import jax

    # CPU processes need gloo for collectives across processes; other backends ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=config.coordinator_address,
            num_processes=config.num_processes,
            process_id=config.process_id,
            initialization_timeout=config.connect_timeout,
        )
    except Exception as e:  # connection refused, timeout, bad address: one line, exit 2
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ConfigError(
            "coordinator_address",
            f"could not join {config.coordinator_address} as process "
            f"{config.process_id}/{config.num_processes} ({first}); check every process "
            "started, or raise --connect_timeout",
        ) from None
