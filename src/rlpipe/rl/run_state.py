"""A run's state on the device mesh: built fresh (the replicated training state, every device's own state initialized
on that device) or restored from a checkpoint, with the partition specs the compiled chunk needs."""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from rlpipe.compat import weakly_typed
from rlpipe.rl import curriculum, mesh
from rlpipe.rl.acting import EnvBatchState
from rlpipe.rl.algorithm import Algorithm
from rlpipe.rl.chunk import RunState, checkpoint_tree
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.loop import Resume
from rlpipe.rl.seeds import Seeds

logger = logging.getLogger(__name__)


def _specs(device_specs: Any, seeds: Seeds) -> RunState:
    replicated = mesh.replicated_spec()
    return RunState(training=seeds.seed_spec(), device=device_specs, key=seeds.seed_spec(), iteration=replicated,
                    curriculum=replicated)


def _device_init(algorithm: Algorithm, config: Any, spec: EnvSpec, keys: jax.Array, scenarios: ScenarioBatch,
                 data: Any):
    """The compiled per-device state init for these inputs, and the partition specs of what it returns."""
    seeds = Seeds.of(config)
    num_devices, groups = seeds.data_devices, seeds.groups

    def one(keys, scenarios, data):  # keys [1 device, ...], data leaves [this device's share, ...]
        return algorithm.init_device_state(config, spec, scenarios, keys[0], num_devices, data)

    per_device = seeds.map(one, in_axes=(0, None, None if data is None else 0))
    axis = seeds.device_axis

    def local(x):  # one device's slice of a split global array
        shape = list(x.shape)
        shape[axis] //= num_devices
        shape[0] //= groups if axis else 1  # with seed groups, this group's seeds
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    specs = seeds.per_device_specs(jax.eval_shape(per_device, local(keys), scenarios, jax.tree.map(local, data)))
    split = seeds.sharded_spec()
    init = jax.shard_map(per_device, mesh=seeds.mesh(), out_specs=specs, check_vma=False,
                         in_specs=(split, mesh.replicated_spec(), split))
    # laid out as the specs say, explicitly: left to itself, on a one-device mesh jit hands back some leaves as
    # P() instead of P('data') (the same layout there), and a restored state, which is put by the specs, would then
    # be another signature for the chunk (compiled again on resume instead of loaded from the cache)
    return jax.jit(init, out_shardings=mesh.shardings(specs, groups)), specs


def initial_state(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, training: Any,
                  key: jax.Array, device_data: Any = None, resume: Resume | None = None) -> tuple[RunState, RunState]:
    """The run state on the mesh and its partition specs: fresh (the replicated ``training``, per-device state
    built on every device from ``key`` and its slice of ``device_data``), or restored from ``resume``."""
    seeds = Seeds.of(config)
    num_devices = seeds.data_devices
    # each seed splits its own key exactly as a one-seed run does
    init_key, run_key = seeds.map(lambda k: tuple(jax.random.split(k)))(key)
    device_keys = seeds.map(lambda k: mesh.device_keys(k, num_devices))(init_key)
    split = seeds.sharded_spec()
    keys = seeds.put(np.asarray(device_keys), split)
    data = seeds.put(device_data, split) if device_data is not None else None
    init, device_specs = _device_init(algorithm, config, spec, keys, scenarios, data)
    specs = _specs(device_specs, seeds)
    fresh_curriculum = ()
    if config.scenarios.curriculum is not None:
        fresh_curriculum = seeds.join([curriculum.initial_state(scenarios.size)] * seeds.count)
    if resume is None:
        return RunState(seeds.put(mesh.host_copy(training), specs.training), init(keys, scenarios, data),
                        seeds.put(np.asarray(run_key), specs.key), seeds.put(np.int32(0), specs.iteration),
                        seeds.put(fresh_curriculum, specs.curriculum)), specs
    abstract = RunState(jax.eval_shape(lambda: training), jax.eval_shape(init, keys, scenarios, data),
                        jax.ShapeDtypeStruct(run_key.shape, run_key.dtype), jax.ShapeDtypeStruct((), jnp.int32),
                        jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), fresh_curriculum))
    restored = restore_state(algorithm, abstract, specs, resume, seeds)
    if spec.host is not None:
        logger.warning("%s is stepped on the host and its envs cannot be snapshotted: the run resumes from the "
                       "checkpoint's parameters, optimizer, buffer and RNG with freshly reset episodes", spec.id)
        is_envs = lambda x: isinstance(x, EnvBatchState)  # noqa: E731
        fresh = init(keys, scenarios, data)
        restored = restored.replace(device=jax.tree.map(lambda old, new: new if is_envs(old) else old,
                                                        restored.device, fresh, is_leaf=is_envs))
    return restored, specs


def restore_state(algorithm: Algorithm, abstract: RunState, specs: RunState, resume: Resume,
                  seeds: Seeds) -> RunState:
    """A run state on this mesh from a checkpoint tree (numpy, as loaded). Written on another device count, the
    per-device state is redistributed by the algorithm over the devices present (seed by seed)."""
    tree = dict(resume.tree)
    num_devices = seeds.data_devices
    if resume.num_devices != num_devices:
        logger.warning("resuming a checkpoint written on %d device(s) on %d: per-device state is redistributed over "
                       "the new devices, so this continuation is not bitwise identical to an uninterrupted run",
                       resume.num_devices, num_devices)
        tree["device"] = seeds.join([algorithm.redistribute_device_state(device, resume.num_devices, num_devices)
                                     for device in seeds.each(tree["device"])])
    want = checkpoint_tree(abstract)
    if "curriculum" in want and "curriculum" not in tree:
        raise ValueError("the checkpoint was written without scenarios.curriculum: it is from another config")
    if "curriculum" not in want:
        tree.pop("curriculum", None)
    restored = serialization.from_state_dict(want, tree)
    for (path, wanted), got in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(restored)):
        if tuple(np.shape(got)) != tuple(wanted.shape):
            raise ValueError(f"checkpoint leaf {jax.tree_util.keystr(path)} has shape {np.shape(got)}, this run "
                             f"needs {wanted.shape}: the checkpoint is from another config")
    restored = jax.tree.map(lambda x, wanted: np.asarray(x, wanted.dtype), restored, want)
    state = RunState(training=seeds.put(restored["training"], specs.training),
                     device=seeds.put(restored["device"], specs.device),
                     key=seeds.put(restored["key"], specs.key),
                     iteration=seeds.put(restored["iteration"], specs.iteration),
                     curriculum=seeds.put(restored["curriculum"], specs.curriculum) if "curriculum" in restored else ())
    # a checkpoint's numpy arrays come back strongly typed; where the fresh state was weakly typed (a JAX env's
    # `time = 0`), so is the restored one: the resumed run is the same compiled program as the fresh one (loaded
    # from the compilation cache, not compiled again for a signature that differs only there)
    return jax.tree.map(lambda x, wanted: weakly_typed(x) if wanted.weak_type else x, state, abstract)
