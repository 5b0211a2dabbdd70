"""The training core every algorithm shares: the compiled chunk and ``train``, which puts a run together from its
parts (the schedule: ``rlpipe.rl.schedule``; the run state on the mesh: ``rlpipe.rl.run_state``; the per-device loop
body: ``rlpipe.rl.chunk``; the seed axis: ``rlpipe.rl.seeds``; the host's work between chunks:
``rlpipe.rl.between_chunks`` and ``rlpipe.rl.loop``).

The compiled chunk is ``jit(shard_map(...))`` over the mesh of all devices of all processes: many iterations of
the algorithm's per-device ``iteration`` in one ``fori_loop``, the training state replicated, the per-device state
(environments, buffer shards) split along the mesh axis, the state donated. The host wakes only between chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from rlpipe.rl import between_chunks, loop, mesh
from rlpipe.rl.algorithm import Algorithm, metric_names
from rlpipe.rl.chunk import RunState, checkpoint_tree, episode_log_size, make_body
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.host_memory import release_freed_memory
from rlpipe.rl.run_state import initial_state
from rlpipe.rl.schedule import Schedule, plan
from rlpipe.rl.seeds import Seeds, num_seeds

logger = logging.getLogger(__name__)


class TrainResult(NamedTuple):
    state: dict[str, Any]  # the final run state in checkpoint form (global arrays)
    history: list[dict[str, Any]]  # one row per chunk
    final_evaluation: dict[str, Any] | None  # per-eval-scenario "returns", "lengths", "metrics" of the final policy
    curve: list[dict[str, Any]] = []  # the training metrics at history_points_per_log points per chunk (see loop)
    curriculum: dict[str, Any] | None = None  # the final curriculum state (numpy), None without a curriculum
    episodes: list[dict[str, Any]] = []  # a row per finished training episode (env steps, return; see loop)


def make_chunk(algorithm: Algorithm, config: Any, spec: EnvSpec, specs: RunState,
               schedule: Schedule | None = None):
    """``chunk(run, scenarios, num_iters) -> (run, metrics)``: ``num_iters`` iterations (traced, so every chunk
    length shares one program) of every seed of the run, compiled as ``jit(shard_map(...))`` with the run state
    donated; metrics averaged over iterations, devices and seeds, episode statistics summed (see
    ``rlpipe.rl.chunk.chunk_metrics``; the trace's shape comes from ``schedule``, by default the config's).

    Divergence is caught inside the loop at the cost of a few scalar checks: ``nonfinite_iteration`` is the first
    iteration whose metrics were not finite (-1 if none), ``nonfinite/<metric>`` flags which (1.0) at that
    iteration, and ``nonfinite/parameters`` whether the training state's floating-point leaves are finite at the end.
    """
    names = metric_names(algorithm, config)
    schedule = schedule or plan(algorithm, config)
    points, stride = schedule.trace_shape
    seeds = Seeds.of(config)
    # each seed's data is split over its own group's devices (all of them unless the seeds are spread over groups)
    body = make_body(algorithm.make_iteration(config, spec, seeds.data_devices), names, points, stride,
                     config.scenarios.curriculum is not None,
                     episode_log_size(schedule, seeds.data_devices, num_seeds(config)))
    replicated = mesh.replicated_spec()
    # check_vma=False: algorithms write plain JAX (zero-initialized scan carries and all); that the training state
    # really stays identical on every device is the algorithm's pmean, and a test of each algorithm checks it.
    sharded = jax.shard_map(seeds.chunk_body(body, names), mesh=seeds.mesh(),
                            in_specs=(specs, replicated, replicated), out_specs=(specs, replicated), check_vma=False)
    return jax.jit(sharded, donate_argnums=(0,))


def compile_chunk(chunk, state: RunState, scenarios: ScenarioBatch, num_iters: int, alongside=None):
    """Compile ``chunk`` ahead of time for these shapes: ``(run(state, n) -> (state, metrics), seconds)``.

    ``alongside`` (a no-argument callable, e.g. an evaluator's ``precompile``) runs on a second thread meanwhile:
    XLA compiles without holding the GIL, so two compilations share the cores instead of queueing.
    """
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(alongside) if alongside is not None else None
        compiled = chunk.lower(state, scenarios, jnp.int32(num_iters)).compile()
        if side is not None:
            side.result()
    seconds = time.perf_counter() - started
    release_freed_memory()  # the compilers' scratch memory, which glibc would otherwise keep for the whole run
    return (lambda s, n: compiled(s, scenarios, jnp.int32(n))), seconds


def train(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, training: Any, key: jax.Array,
          *, device_data: Any = None, eval_scenarios: ScenarioBatch | None = None,
          on_progress: loop.ProgressFn | None = None, on_checkpoint: loop.CheckpointFn | None = None,
          resume: loop.Resume | None = None,
          on_policy: tuple[int, Callable[[int, dict[str, Any]], None]] | None = None) -> TrainResult:
    """Train to ``total_env_steps`` (or until early stopping, where the config has it) on every device of every
    process.

    ``training`` is the initial training state, ``device_data`` host arrays split over the devices for their state
    init (SAC's prefill transitions). With ``eval_scenarios`` the deterministic policy is evaluated on them every
    ``eval_every_env_steps`` and at the end (the final evaluation is returned); rows without one carry NaN. With
    ``resume`` training continues from that checkpoint exactly as it would have without the interruption (on the
    same device count). With ``on_policy = (every, fn)``, ``fn(env_steps, policy)`` gets the current deterministic
    policy as a bundle (``rlpipe.rl.policies``) every ``every`` env steps and at the end (e.g. to film it).
    """
    from rlpipe.rl.envs.host import reraise_host_failures

    try:
        with reraise_host_failures(spec.host):
            return _train(algorithm, config, spec, scenarios, training, key, device_data=device_data,
                          eval_scenarios=eval_scenarios, on_progress=on_progress, on_checkpoint=on_checkpoint,
                          resume=resume, on_policy=on_policy)
    finally:
        spec.close_host_envs()


def _train(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, training: Any, key: jax.Array,
           *, device_data: Any, eval_scenarios: ScenarioBatch | None, on_progress: loop.ProgressFn | None,
           on_checkpoint: loop.CheckpointFn | None, resume: loop.Resume | None,
           on_policy: tuple[int, Callable[[int, dict[str, Any]], None]] | None) -> TrainResult:
    schedule = plan(algorithm, config)
    global_scenarios = mesh.put_replicated(mesh.host_copy(scenarios), Seeds.of(config).groups)
    run, specs = initial_state(algorithm, config, spec, global_scenarios, training, key, device_data, resume)
    evaluate, precompile = None, None
    if eval_scenarios is not None:
        evaluate, precompile_run = between_chunks.periodic_evaluation(algorithm, config, spec, eval_scenarios)
        precompile = lambda: precompile_run(run)  # noqa: E731
    chunk, compile_s = compile_chunk(make_chunk(algorithm, config, spec, specs, schedule), run, global_scenarios,
                                     schedule.iters_per_chunk, alongside=precompile)
    if spec.host is not None:  # an env that raised in the chunk: stop before its results are used or checkpointed
        chunk = _raising_host_failures(chunk, spec.host)
    logger.info("train step compiled in %.1f s; up to %d iterations of %d env steps and %d gradient steps on %d "
                "device(s) in %d process(es)", compile_s, schedule.total_iters, schedule.env_steps_per_iter,
                schedule.grad_steps_per_iter, mesh.device_count(), mesh.process_count())
    if Seeds.of(config).groups > 1:
        logger.info("%d seeds spread over %d groups of %d device(s): no collective crosses seeds while training",
                    num_seeds(config), Seeds.of(config).groups, Seeds.of(config).data_devices)
    e = getattr(config, "early_stopping", None)
    stopper = EarlyStopping(e.target_return, e.monitor, e.window, e.patience) if e is not None else None
    periodic = ()
    if on_policy is not None:
        every, deliver = on_policy
        periodic = ((every, between_chunks.policy_delivery(algorithm, config, spec, deliver)),)
    adapt = None
    if config.scenarios.curriculum is not None:
        adapt = (config.scenarios.curriculum.every_env_steps,
                 between_chunks.curriculum_update(algorithm, config, spec, scenarios))
    run, history, final, curve, episodes = loop.run(
        schedule, run, chunk, evaluate=evaluate, checkpoint_tree=checkpoint_tree, on_progress=on_progress,
        on_checkpoint=on_checkpoint, stopper=stopper, resume=resume, periodic=periodic, adapt=adapt)
    if stopper is not None and stopper.stopped_at is not None:
        logger.info("early stop at %d env steps: windowed %s return %.1f >= target %.1f for %d checks",
                    stopper.stopped_at, e.monitor, stopper.values[-1], e.target_return, e.patience)
    final_curriculum = mesh.host_copy(run.curriculum) if adapt is not None else None
    return TrainResult(checkpoint_tree(run), history, final, curve, final_curriculum, episodes)


def _raising_host_failures(chunk, host):
    def checked(state, n):
        state, metrics = chunk(state, n)
        jax.block_until_ready(metrics)
        host.raise_failure()
        return state, metrics
    return checked


def inherit(algorithm: Algorithm, fresh: Any, stored: dict[str, Any], *, optimizer: bool, key: str) -> Any:
    """``fresh`` (a new training state) with the parameters (``algorithm.inheritable["params"]``) and, with
    ``optimizer``, the optimizer states of ``stored`` (a checkpoint's training part, as dicts); counters stay
    fresh: it is a new run. A part whose tree or shapes differ from this config's is a ``ConfigError`` on ``key``
    naming the first difference."""
    fields = list(algorithm.inheritable["params"])
    if optimizer:
        fields += algorithm.inheritable["optimizer"]
    ours = serialization.to_state_dict(fresh)
    for field in fields:
        if field not in stored:
            raise ConfigError(key, f"the stored agent has no {field!r}: it was not written by this version of "
                                   f"{algorithm.name}")
        mine, theirs = _leaves(ours[field]), _leaves(stored[field])
        for path in sorted(mine.keys() | theirs.keys()):
            a, b = mine.get(path), theirs.get(path)
            if a is None or b is None or np.shape(a) != np.shape(b):
                shape = lambda x: "absent" if x is None else f"shape {tuple(np.shape(x))}"  # noqa: E731
                raise ConfigError(key, f"the stored agent does not fit this config: {field}/{path} has "
                                       f"{shape(b)} there but {shape(a)} here (network sizes, env or algorithm "
                                       f"settings differ)")
    return serialization.from_state_dict(fresh, {**ours, **{field: stored[field] for field in fields}})


def _leaves(tree: Any) -> dict[str, Any]:
    """A state dict's leaves by their slash-joined path (a bare leaf: path "")."""
    return traverse_util.flatten_dict(tree, sep="/") if isinstance(tree, dict) and tree else {"": tree}
