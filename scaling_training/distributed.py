"""Multi-host start-up: `jax.distributed.initialize` before anything touches a device.

A coordinator that cannot be reached, or a process that never joins, makes JAX's C++ client
abort the process (SIGABRT and a C++ trace) once its timeout runs out, which Python cannot
catch. So the processes first meet on the coordinator's port with plain sockets, for at most
`--connect_timeout` seconds, and a failure is one line and status 2.
"""

from __future__ import annotations

import socket
import time

from scaling_training.errors import ConfigError


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def rendezvous(config, poll_s: float = 0.5) -> None:
    """Meet every process on the coordinator's port before JAX does, with plain sockets.

    Process 0 listens there until each other process has said hello (its id), for at most
    `config.connect_timeout` seconds; the others connect (retrying until the deadline), say
    hello and close. Then JAX's coordination service takes the port over. ConfigError, one
    line, when the port cannot be used or a process does not come.
    """
    host, port = _split(config.coordinator_address)
    deadline = time.monotonic() + config.connect_timeout
    if config.process_id == 0:
        _await_hellos(config, host, port, deadline)
        return
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(poll_s, 1.0)) as s:
                s.sendall(f"{config.process_id}\n".encode())
                s.shutdown(socket.SHUT_WR)
                s.recv(1)  # process 0 closes once it has read the hello
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


def _await_hellos(config, host: str, port: int, deadline: float) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        server = socket.socket(infos[0][0], socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(infos[0][4])
        server.listen()
    except OSError as e:
        raise ConfigError(
            "coordinator_address",
            f"process 0 cannot listen on {config.coordinator_address} ({e.strerror or e}); "
            "give an address of this host and a free port",
        ) from None
    waiting = set(range(1, config.num_processes))
    with server:
        while waiting:
            server.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                conn, _ = server.accept()
            except TimeoutError:
                missing = ", ".join(map(str, sorted(waiting)))
                raise ConfigError(
                    "num_processes",
                    f"{config.num_processes - len(waiting)} of {config.num_processes} processes "
                    f"reached {config.coordinator_address} within {config.connect_timeout} s "
                    f"(missing process ids: {missing}); start them, or raise --connect_timeout",
                ) from None
            with conn:
                conn.settimeout(5)
                try:
                    hello = conn.recv(32).decode().strip()
                except OSError:
                    continue
                if hello.isdigit():
                    waiting.discard(int(hello))


def initialize(config) -> None:
    """Join the run's processes (no-op for one process). Each process then sees every
    device of the run in `jax.devices()` and feeds only its own devices' data."""
    if config.num_processes == 1:
        return
    rendezvous(config)
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
