"""The device mesh every compiled training call runs on, over all devices of all processes.

By default one axis, ``AXIS``: training state is replicated on it (``P()``), per-device state (environments, buffer
shards) is split along its leading dimension (``P(AXIS)``). A many-seed run may spread its seeds over groups of
devices instead (:func:`seed_groups`): a second axis, ``SEED_AXIS``, before ``AXIS``; each seed's state lives in
its own group only and its collectives run over ``AXIS`` inside that group, so no collective crosses seeds.
Several processes (hosts) join through ``jax.distributed`` (:func:`initialize`); from then on ``jax.devices()``
lists every process's devices and the same code runs in every process. Process 0 is the *primary*: it alone
writes artifacts.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
from typing import Any

import numpy as np

# the status of a process that stopped because another was lost (re-exported: launchers and scripts look for it here)
from rlpipe.rl.peers import LOST_PROCESS_EXIT_CODE as LOST_PROCESS_EXIT_CODE
from rlpipe.rl import transport
from rlpipe.rl.peers import watch_peers

logger = logging.getLogger(__name__)

AXIS = "data"  # the mesh axis: gradients and statistics are averaged over it
SEED_AXIS = "seeds"  # the axis of seed groups (only in a mesh of several): seeds' state is split over it


# ---------------------------------------------------------------------------------------------- collectives
# Inside the compiled programs, over ``axis`` (None: no mesh axis, the tree as it is). On a one-device mesh they are
# the identity, bitwise what the collective computes; XLA keeps a one-participant all-reduce inside a loop, though,
# at a rendezvous per iteration (7% of SAC's env steps/s at 8 environments).


def _single(axis: str | None) -> bool:
    import jax

    return axis is None or jax.lax.axis_size(axis) == 1


def per_dtype_buffer(tree: Any, collective: Any, keep: int = 0) -> Any:
    """``collective`` applied to ``tree`` as one flat buffer per dtype, each leaf's first ``keep`` axes kept (the
    collective may change their size, as a tiled all-gather does): XLA's CPU runtime runs a collective of a tuple
    leaf by leaf, a rendezvous of the devices (between processes, a round trip) for each leaf."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree.flatten(tree)
    out: list[Any] = [None] * len(leaves)
    for dtype in dict.fromkeys(leaf.dtype for leaf in leaves):
        mine = [i for i, leaf in enumerate(leaves) if leaf.dtype == dtype]
        sizes = [math.prod(leaves[i].shape[keep:]) for i in mine]
        flat = collective(jnp.concatenate([leaves[i].reshape((*leaves[i].shape[:keep], size))
                                           for i, size in zip(mine, sizes)], axis=keep))
        start = 0
        for i, size in zip(mine, sizes):
            out[i] = flat[(slice(None),) * keep + (slice(start, start + size),)].reshape(
                (*flat.shape[:keep], *leaves[i].shape[keep:]))
            start += size
    return jax.tree.unflatten(treedef, out)


def _flat_reduce(tree: Any, reduce: Any) -> Any:
    """``reduce`` (an all-reduce) of a tree as one flat buffer per dtype (:func:`per_dtype_buffer`). The barriers
    keep XLA from fusing the leaves' producers and consumers with the concatenation and the slices, which would
    change the bits of what they compute (e.g. the statistics of a many-seed chunk)."""
    import jax

    return jax.lax.optimization_barrier(per_dtype_buffer(jax.lax.optimization_barrier(tree), reduce))


def pmean(tree: Any, axis: str | None = AXIS) -> Any:
    import jax

    return tree if _single(axis) else _flat_reduce(tree, lambda flat: jax.lax.pmean(flat, axis))


def psum(tree: Any, axis: str | None = AXIS) -> Any:
    import jax

    return tree if _single(axis) else _flat_reduce(tree, lambda flat: jax.lax.psum(flat, axis))


def pmax(tree: Any, axis: str | None = AXIS) -> Any:
    import jax

    return tree if _single(axis) else jax.lax.pmax(tree, axis)


# ---------------------------------------------------------------------------------------------- processes
def initialize(settings: Any = None) -> bool:
    """Join the other processes of a multi-process run, if this is one; returns whether it is.

    ``settings`` is the ``distributed`` config section (:class:`rlpipe.rl.config.DistributedConfig`). Values it
    leaves unset come from the environment: ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID`` (on a Kubernetes indexed Job, ``JOB_COMPLETION_INDEX``), or JAX's own cluster detection
    (SLURM, Open MPI). Without any of these the run is single-process and nothing happens. Must run before
    anything touches a JAX backend.
    """
    import jax

    address = getattr(settings, "coordinator_address", None) or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = getattr(settings, "num_processes", None) or _env_int("JAX_NUM_PROCESSES")
    process_id = getattr(settings, "process_id", None)
    if process_id is None:
        process_id = _env_int("JAX_PROCESS_ID", _env_int("JOB_COMPLETION_INDEX"))
    detected = _cluster_detected()
    if not (address or (num_processes or 1) > 1 or detected):
        return False
    if _initialized():
        return True
    # collectives between the CPU devices of different processes (accelerators bring their own)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    lost_after = int(getattr(settings, "heartbeat_timeout_seconds", 15))
    jax.distributed.initialize(
        coordinator_address=address, num_processes=num_processes, process_id=process_id,
        initialization_timeout=int(getattr(settings, "initialization_timeout_seconds", 120)),
        # JAX's own heartbeat is the backstop: later than ours, which names the lost process and what to do
        heartbeat_timeout_seconds=2 * lost_after + 5,
        shutdown_timeout_seconds=int(getattr(settings, "shutdown_timeout_seconds", 300)))
    watch_peers(lost_after)
    before = transport.thread_ids()
    jax.devices()  # creates the backend, and with it the collectives' transport and its event thread
    transport.calm_new_event_threads(before)
    logger.info("process %d of %d joined %s: %d devices in all, %d here", jax.process_index(), jax.process_count(),
                address or "the cluster's coordinator", jax.device_count(), jax.local_device_count())
    return True


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _cluster_detected() -> bool:
    """A scheduler that started several tasks of this program (JAX detects the rest itself)."""
    slurm = "SLURM_JOB_ID" in os.environ and "SLURM_STEP_NODELIST" in os.environ and \
        (_env_int("SLURM_NTASKS") or _env_int("SLURM_STEP_NUM_TASKS") or 1) > 1
    ompi = (_env_int("OMPI_COMM_WORLD_SIZE") or 1) > 1
    return slurm or ompi


def _initialized() -> bool:
    if "jax" not in sys.modules:  # nothing can have joined a distributed run without importing jax
        return False
    from rlpipe.compat import jax_distributed_initialized

    return jax_distributed_initialized()


def process_index() -> int:
    """This process's index (0 in a single-process run; asks nothing of a JAX backend then)."""
    if not _initialized():
        return 0
    import jax

    return jax.process_index()


def process_count() -> int:
    if not _initialized():
        return 1
    import jax

    return jax.process_count()


def is_primary() -> bool:
    """Whether this process writes artifacts (process 0; always true in a single-process run)."""
    return process_index() == 0


def device_count() -> int:
    """Devices of all processes: what ``num_envs``, ``batch_size`` and buffer capacity are split over."""
    import jax

    return jax.device_count()


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (nothing happens in a single-process run)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_text(text: str | None, limit: int = 4096) -> str:
    """The primary's ``text`` in every process (a path or a run name every process must agree on)."""
    if process_count() == 1:
        return text or ""
    from jax.experimental import multihost_utils

    data = np.zeros(limit, np.uint8)
    if is_primary():
        raw = (text or "").encode()
        if len(raw) > limit:
            raise ValueError(f"cannot broadcast {len(raw)} bytes (limit {limit})")
        data[: len(raw)] = np.frombuffer(raw, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(data))
    return bytes(out[out != 0].tobytes()).decode()


# ---------------------------------------------------------------------------------------------- the mesh
def seed_groups(num_seeds: int, seeds_per_device: int | None, num_devices: int, num_processes: int) -> int:
    """Into how many groups of devices a run's seeds are spread: each group trains ``num_seeds / groups`` seeds
    (vmapped) on its ``num_devices / groups`` devices, which split each of those seeds' data.

    ``seeds_per_device`` None chooses: in a single process 1 group (every seed over every device, the layout whose
    bits every earlier run has); over several processes as many groups as divide both the seeds and the devices,
    since a collective between processes costs far more than one inside a process and seeds need none. An explicit
    layout that does not fit raises ``ValueError`` saying why (the config check names the keys)."""
    if seeds_per_device is None:
        return math.gcd(num_seeds, num_devices) if num_processes > 1 else 1
    if num_seeds % seeds_per_device:
        raise ValueError(f"{num_seeds} seeds cannot be laid out {seeds_per_device} per device: num_seeds must be a "
                         "multiple of seeds_per_device")
    groups = num_seeds // seeds_per_device
    if num_devices % groups:
        raise ValueError(f"{num_seeds} seeds at {seeds_per_device} per device need {groups} groups of devices, "
                         f"which do not divide the {num_devices} device(s) over all processes")
    return groups


@functools.cache
def make_mesh(groups: int = 1):
    """Every device of every process, in ``jax.devices()`` order (process 0's first), so the position of a device
    on the data axis, its global index, is the same however the devices are spread over processes. One axis for
    ``groups`` 1; else ``(SEED_AXIS, AXIS)`` of ``groups`` rows, each row consecutive devices (a process's own
    before the next process's: a data group crosses processes only when a process holds less than one group)."""
    import jax
    from jax.sharding import Mesh

    devices = np.asarray(jax.devices())
    if groups == 1:
        return Mesh(devices, (AXIS,))
    return Mesh(devices.reshape(groups, -1), (SEED_AXIS, AXIS))


def replicated_spec():
    from jax.sharding import PartitionSpec

    return PartitionSpec()


def seed_spec(grouped: bool = False):
    """State each seed has once (training state, keys): replicated, or with ``grouped`` its leading seed axis
    split over the seed groups (replicated within each)."""
    from jax.sharding import PartitionSpec

    return PartitionSpec(SEED_AXIS) if grouped else PartitionSpec()


def sharded_spec(seeds: bool = False, grouped: bool = False):
    """Split along the leading axis over the devices; with ``seeds``, along the axis after the leading seed axis
    (itself split over the seed groups with ``grouped``)."""
    from jax.sharding import PartitionSpec

    if grouped:
        return PartitionSpec(SEED_AXIS, AXIS)
    return PartitionSpec(None, AXIS) if seeds else PartitionSpec(AXIS)


def per_device_specs(tree: Any, seeds: bool = False, grouped: bool = False) -> Any:
    """Partition specs of per-device state: leaves with a leading axis are split along it over the devices;
    scalars (e.g. a buffer's write position, the same on every device) are replicated. With ``seeds`` every leaf
    has a leading seed axis first (split over the seed groups with ``grouped``)."""
    import jax

    rank = 1 if seeds else 0
    return jax.tree.map(lambda x: sharded_spec(seeds, grouped) if np.ndim(x) > rank else seed_spec(grouped), tree)


def shardings(specs: Any, groups: int = 1) -> Any:
    """The layouts ``specs`` (a tree of ``PartitionSpec``) name on the mesh of ``groups`` seed groups."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = make_mesh(groups)
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=lambda s: isinstance(s, PartitionSpec))


def put(tree: Any, specs: Any, groups: int = 1) -> Any:
    """Host arrays (identical in every process) -> global arrays on the mesh of ``groups`` seed groups laid out by
    ``specs`` (a spec per leaf, or one for all). Each process materializes only its own devices' slices."""
    import jax
    from jax.sharding import PartitionSpec

    if isinstance(specs, PartitionSpec):
        specs = jax.tree.map(lambda _: specs, tree)

    def place(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(place, tree, shardings(specs, groups))


def put_replicated(tree: Any, groups: int = 1) -> Any:
    return put(tree, replicated_spec(), groups)


def host_copy(tree: Any, gather: bool = True) -> Any:
    """Global arrays -> numpy, in every process: what this process can read (replicated arrays, its own devices'
    arrays) in one transfer, arrays split over other processes' devices gathered from them (with ``gather=False``
    left as they are, e.g. for a checkpoint, where each process writes its own shards)."""
    import jax

    leaves, structure = jax.tree.flatten(tree)
    split = [isinstance(x, jax.Array) and not x.is_fully_replicated and not x.is_fully_addressable for x in leaves]
    local = iter(jax.device_get([x for x, s in zip(leaves, split) if not s]))
    kept = iter([x for x, s in zip(leaves, split) if s])
    if gather and any(split):
        from jax.experimental import multihost_utils

        kept = iter([np.asarray(x) for x in multihost_utils.process_allgather(list(kept), tiled=True)])
    return jax.tree.unflatten(structure, [next(kept) if s else np.asarray(next(local)) for s in split])


def device_keys(key: Any, num_devices: int) -> Any:
    """One key per device, folded from ``key`` with the device's global index (no two devices share a stream);
    inside the compiled chunk the same folding uses ``lax.axis_index``."""
    import jax
    import jax.numpy as jnp

    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(num_devices))
