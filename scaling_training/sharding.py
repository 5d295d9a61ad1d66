"""Where arrays live: a device mesh from `--mesh`, batch sharding, replicated or FSDP params.

A mesh spec is `axis:size[,axis:size]` with axes `data` (the batch is split over it),
`model` (large parameter dimensions are split over it) and, for sweeps, `members` (the
sweep's runs are split over it), e.g. `data:8`, `data:4,model:2` or `members:4,data:2`.
Everything here works unchanged across processes (multi-host): arrays are built from each
process's local part with `jax.make_array_from_callback` / `make_array_from_process_local_data`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scaling_training.errors import ConfigError

AXES = ("data", "model", "members")


def parse_mesh(spec: str, device_count: int) -> dict[str, int]:
    """`data:4,model:2` -> {"data": 4, "model": 2}; "" -> all devices on `data`."""
    if not spec.strip():
        return {"data": device_count}
    axes: dict[str, int] = {}
    for part in spec.split(","):
        name, _, size = part.strip().partition(":")
        if name not in AXES:
            raise ConfigError(
                "mesh", f"unknown axis {name!r} in {spec!r}; axes are {', '.join(AXES)}"
            )
        if name in axes:
            raise ConfigError("mesh", f"axis {name!r} given twice in {spec!r}")
        if not size.isdigit() or int(size) < 1:
            raise ConfigError("mesh", f"axis {name!r} needs a size >= 1 like {name}:2, in {spec!r}")
        axes[name] = int(size)
    return axes


@dataclasses.dataclass(frozen=True)
class Plan:
    """The mesh and the sharding decisions of a run."""

    mesh: Mesh
    fsdp: bool

    @property
    def data_size(self) -> int:
        return self.mesh.shape.get("data", 1)

    @property
    def model_size(self) -> int:
        return self.mesh.shape.get("model", 1)

    @property
    def members_size(self) -> int:
        return self.mesh.shape.get("members", 1)

    def describe(self, members: int = 0) -> str:
        """One line: the mesh and where parameters live (`members` > 0: a sweep's members)."""
        axes = ",".join(f"{k}:{v}" for k, v in self.mesh.shape.items())
        params = "FSDP over data" if self.fsdp else "replicated over data"
        if self.model_size > 1:
            params += ", large dims over model"
        if members:
            groups = self.members_size
            where = f"split over members ({members // groups} per group)" if groups > 1 else (
                "all on every device")  # fmt: skip
            params = f"{members} members {where}, each member's params {params}"
        kind = self.mesh.devices.flat[0].platform
        processes = jax.process_count()
        return (
            f"mesh {axes} ({self.mesh.size} {kind} devices, {processes} processes); params {params}"
        )

    # -- shardings ---------------------------------------------------------------------------

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def batches(self) -> NamedSharding:
        """[K steps, B examples, ...]: examples split over `data`."""
        return NamedSharding(self.mesh, P(None, "data"))

    def spec_for_shape(self, shape: tuple[int, ...]) -> P:
        """Matrices: the largest dim divisible by the model axis goes over `model`; with FSDP
        the largest remaining dim divisible by the data axis goes over `data`. The rule depends
        only on the shape, so optimizer moments get the same layout as their parameters."""
        spec: list[str | None] = [None] * len(shape)
        by_size = sorted(range(len(shape)), key=lambda d: -shape[d])
        if self.model_size > 1 and len(shape) >= 2:
            for d in by_size:
                if shape[d] % self.model_size == 0:
                    spec[d] = "model"
                    break
        if self.fsdp and self.data_size > 1:
            for d in by_size:
                if spec[d] is None and shape[d] % self.data_size == 0:
                    spec[d] = "data"
                    break
        return P(*spec)

    def param_shardings(self, tree: Any) -> Any:
        return jax.tree.map(lambda x: NamedSharding(self.mesh, self.spec_for_shape(x.shape)), tree)

    # -- placing host data -------------------------------------------------------------------

    def place(self, tree: Any, shardings: Any) -> Any:
        """Global arrays from host values every process holds whole (params, test sets)."""

        def put(x, sharding):
            if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
                # Typed PRNG keys (dropout's Rngs in `rest`) have no NumPy form: place
                # their raw key data and wrap it again.
                data = put(jax.random.key_data(x), sharding)
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

        if isinstance(shardings, NamedSharding):
            return jax.tree.map(lambda x: put(x, shardings), tree)
        return jax.tree.map(put, tree, shardings)

    def local_batch_slice(self, batch_size: int) -> slice:
        """The examples of each batch this process feeds (its devices' rows on `data`)."""
        index_map = self.batches.addressable_devices_indices_map((1, batch_size))
        rows = [idx[1] for idx in index_map.values()]
        start = min(r.start or 0 for r in rows)
        stop = max(batch_size if r.stop is None else r.stop for r in rows)
        return slice(start, stop)

    def place_batches(self, x: np.ndarray, y: np.ndarray, indices: np.ndarray):
        """Gather this process's shard of the batches [K, B] and make global arrays of them."""
        local = indices[:, self.local_batch_slice(indices.shape[1])]
        return self.place_local_batches(x[local], y[local], indices.shape)

    def place_local_batches(self, x_local: np.ndarray, y_local: np.ndarray, global_shape):
        """Global batches [K, B, ...] from this process's examples of them (its columns,
        `local_batch_slice`)."""
        global_shape = tuple(global_shape)
        xs = jax.make_array_from_process_local_data(
            self.batches, x_local, global_shape + x_local.shape[2:]
        )
        ys = jax.make_array_from_process_local_data(
            self.batches, y_local, global_shape + y_local.shape[2:]
        )
        return xs, ys


def check_members(axes: dict[str, int], members: int) -> None:
    """ConfigError unless the mesh axes suit a sweep of `members` runs (0: not a sweep)."""
    if "members" in axes and not members:
        raise ConfigError("mesh", "the members axis is for sweeps (--lrs); use data or model")
    if members and axes.get("model", 1) > 1:
        raise ConfigError("mesh", "sweeps split members and data, not model; drop model:N")
    if members and members % axes.get("members", 1):
        raise ConfigError(
            "mesh",
            f"the sweep's {members} runs (lrs x seeds) do not divide over "
            f"members:{axes['members']}; pick a divisor of {members}",
        )


def make_plan(spec: str, fsdp: bool, batch_size: int, members: int = 0, default: str = "") -> Plan:
    """The mesh for `--mesh` (`default` when empty: every device on data); ConfigError when
    it does not fit the devices, the batch, or the `members` of a sweep (0: not a sweep)."""
    devices = jax.devices()
    axes = parse_mesh(spec or default, len(devices))
    check_members(axes, members)
    needed = math.prod(axes.values())
    if needed > len(devices) or (jax.process_count() > 1 and needed != len(devices)):
        raise ConfigError(
            "mesh",
            f"{spec or 'data:all'} needs {needed} devices but the run has {len(devices)} "
            f"({devices[0].platform})"
            + (f" across {jax.process_count()} processes" if jax.process_count() > 1 else ""),
        )
    data_size = axes.get("data", 1)
    if batch_size % data_size:
        raise ConfigError(
            "batch_size", f"{batch_size} does not divide over the {data_size} devices of data"
        )
    mesh = jax.make_mesh(
        tuple(axes.values()),
        tuple(axes),
        axis_types=(AxisType.Auto,) * len(axes),
        devices=devices[:needed],
    )
    return Plan(mesh=mesh, fsdp=fsdp)
