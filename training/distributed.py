"""Multi-host start-up: `jax.distributed.initialize` before anything touches a device."""

from __future__ import annotations

from training.errors import ConfigError


def initialize(config, timeout_s: int = 120) -> None:
    """Join the run's processes (no-op for one process). `config` has num_processes,
    process_id and coordinator_address (a training.config.TrainConfig). Each process
    then sees every device of the run in `jax.devices()` and feeds only its own
    devices' data."""
    if config.num_processes == 1:
        return
    import jax

    # CPU processes need gloo for collectives across processes; other backends ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=config.coordinator_address,
            num_processes=config.num_processes,
            process_id=config.process_id,
            initialization_timeout=timeout_s,
        )
    except Exception as e:  # connection refused, timeout, bad address: one line, exit 2
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ConfigError(
            "coordinator_address",
            f"could not join {config.coordinator_address} as process "
            f"{config.process_id}/{config.num_processes} ({first})",
        ) from None
