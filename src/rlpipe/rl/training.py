"""The training core every algorithm shares: its state on the device mesh, the compiled chunk, and ``train``.

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
from flax import serialization, struct, traverse_util

from rlpipe.rl import loop, mesh, policies
from rlpipe.rl.acting import EnvBatchState, EpisodeStats, make_evaluator
from rlpipe.rl.algorithm import Algorithm, metric_names
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.envs import EnvSpec, ScenarioBatch, max_episode_steps
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.keys import num_seeds

logger = logging.getLogger(__name__)


@struct.dataclass
class RunState:
    training: Any  # identical on every device (replicated)
    device: Any  # each device's own: leading axis split over the mesh; scalars replicated
    key: jax.Array  # replicated, fixed for the run: folded with a device's global index and the iteration number
    iteration: jax.Array  # replicated int32: iterations done
    curriculum: Any = ()  # replicated: the curriculum's {"weights", "returns"} (rlpipe.rl.curriculum), or ()


class TrainResult(NamedTuple):
    state: dict[str, Any]  # the final run state in checkpoint form (global arrays)
    history: list[dict[str, Any]]  # one row per chunk
    final_evaluation: dict[str, Any] | None  # per-eval-scenario "returns", "lengths", "metrics" of the final policy
    curve: list[dict[str, Any]] = []  # the training metrics at history_points_per_log points per chunk (see loop)
    curriculum: dict[str, Any] | None = None  # the final curriculum state (numpy), None without a curriculum


def checkpoint_tree(run: RunState) -> dict[str, Any]:
    """What a checkpoint holds: the whole run state, each part once (the mesh layout is not a copy per device)."""
    tree = {"training": run.training, "device": run.device, "key": run.key, "iteration": run.iteration}
    if jax.tree.leaves(run.curriculum):
        tree["curriculum"] = run.curriculum
    return tree


def _specs(device_specs: Any) -> RunState:
    replicated = mesh.replicated_spec()
    return RunState(training=replicated, device=device_specs, key=replicated, iteration=replicated,
                    curriculum=replicated)


def make_chunk(algorithm: Algorithm, config: Any, spec: EnvSpec, specs: RunState):
    """``chunk(run, scenarios, num_iters) -> (run, metrics)``: ``num_iters`` iterations (traced, so every chunk
    length shares one program), metrics averaged over iterations and devices, episode statistics summed.

    Divergence is caught inside the loop at the cost of a few scalar checks: ``nonfinite_iteration`` is the first
    iteration whose metrics were not finite (-1 if none), ``nonfinite/<metric>`` flags which (1.0) at that
    iteration, and ``nonfinite/parameters`` whether the training state's floating-point leaves are finite at the end.
    """
    names = metric_names(algorithm, config)
    iteration = algorithm.make_iteration(config, spec, mesh.device_count())
    axis = mesh.AXIS
    points, stride = trace_shape(algorithm, config)

    curriculum = config.scenarios.curriculum is not None

    def per_device(run: RunState, scenarios: ScenarioBatch, num_iters):
        if curriculum:  # resets draw training scenarios by the curriculum's weights
            scenarios = scenarios.replace(weights=run.curriculum["weights"])
        # this device's stream: the run's key folded with the device's global index, then with the iteration
        # number (so the keys depend neither on how iterations are grouped into chunks nor on a resume)
        device_key = jax.random.fold_in(run.key, jax.lax.axis_index(axis))

        def step(carry):
            run, bad_at, bad_flags = carry
            out = iteration(scenarios, run.training, run.device, jax.random.fold_in(device_key, run.iteration))
            run = run.replace(training=out.training, device=out.device, iteration=run.iteration + 1)
            flags = jnp.stack([jnp.logical_not(jnp.isfinite(out.metrics[k])) for k in names])
            first = jnp.logical_and(bad_at < 0, jnp.any(flags))
            return ((run, jnp.where(first, run.iteration, bad_at), jnp.where(first, flags, bad_flags)), out.metrics,
                    out.episodes)

        (run, bad_at, bad_flags), sums, episodes, trace = _iterate(
            step, (run, jnp.int32(-1), jnp.zeros(len(names), bool)), num_iters, points, stride, names)
        n = jnp.maximum(num_iters, 1).astype(jnp.float32)
        metrics = {k: mesh.pmean(sums[k] / n, axis) for k in names}
        episodes = mesh.psum(episodes, axis)
        metrics["episode_return"] = episodes.return_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episode_length"] = episodes.length_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episodes"] = episodes.count
        metrics["nonfinite_iteration"] = mesh.pmax(bad_at, axis)
        _flag_nonfinite(metrics, names, mesh.psum(bad_flags.astype(jnp.int32), axis), run.training)
        metrics.update(_trace_out(trace, names))
        return run, metrics

    replicated = mesh.replicated_spec()
    # check_vma=False: algorithms write plain JAX (zero-initialized scan carries and all); that the training state
    # really stays identical on every device is the algorithm's pmean, and a test of each algorithm checks it.
    body = per_device if num_seeds(config) == 1 else _seeds_per_device(iteration, names, points, stride, curriculum)
    sharded = jax.shard_map(body, mesh=mesh.make_mesh(), in_specs=(specs, replicated, replicated),
                            out_specs=(specs, replicated), check_vma=False)
    return jax.jit(sharded, donate_argnums=(0,))


def trace_shape(algorithm: Algorithm, config: Any) -> tuple[int, int]:
    """(points, stride) of the in-chunk trace: a chunk of up to ``iters_per_chunk`` iterations records
    ``points`` values per metric, point ``j`` the mean over iterations ``j*stride .. (j+1)*stride - 1``; (0, 1)
    when ``train.history_points_per_log`` is 0."""
    wanted = config.train.history_points_per_log
    if not wanted:
        return 0, 1
    env_steps, grad_steps = algorithm.steps_per_iteration(config)
    per_chunk = loop.Schedule.build(config.train, env_steps, grad_steps).iters_per_chunk
    stride = -(-per_chunk // min(wanted, per_chunk))
    return -(-per_chunk // stride), stride


_TRACE_EXTRA = ("count", "episode_return_sum", "episodes")  # columns of the trace after the metrics


def _trace_zero(points: int, names) -> jax.Array | tuple:
    """An empty in-chunk trace [points, metrics + 3]: per point, each metric's sum, then the iterations, the
    returns of the episodes that ended and their number (one array: one update per iteration)."""
    if not points:
        return ()
    return jnp.zeros((points, len(names) + len(_TRACE_EXTRA)), jnp.float32)


def _iterate(step, carry, num_iters, points: int, stride: int, names):
    """``step(carry) -> (carry, metrics, EpisodeStats)`` ``num_iters`` times (traced): returns the carry, each
    metric's sum, the episode statistics summed, and the trace (``()`` without points). With points the loop is
    nested: an outer loop over the points, an inner one over each point's ``stride`` iterations, the point's sums
    written once when its iterations are done (nothing more per iteration than without a trace)."""
    zero = ({k: jnp.float32(0.0) for k in names}, EpisodeStats.zero())

    def inner(_, state):
        carry, sums, episodes = state
        carry, metrics, stats = step(carry)
        return carry, {k: sums[k] + metrics[k] for k in names}, episodes + stats

    if not points:
        carry, sums, episodes = jax.lax.fori_loop(0, num_iters, inner, (carry, *zero))
        return carry, sums, episodes, ()

    def outer(j, state):
        carry, sums, episodes, trace = state
        n = jnp.minimum(stride, num_iters - j * stride)
        carry, point_sums, point_episodes = jax.lax.fori_loop(0, n, inner, (carry, *zero))
        row = jnp.stack([*(point_sums[k] for k in names), n.astype(jnp.float32), point_episodes.return_sum,
                         point_episodes.count])
        return (carry, {k: sums[k] + point_sums[k] for k in names}, episodes + point_episodes,
                jax.lax.dynamic_update_index_in_dim(trace, row, j, 0))

    state = (carry, *zero, _trace_zero(points, names))
    return jax.lax.fori_loop(0, (num_iters + stride - 1) // stride, outer, state)


def _trace_out(trace, names, seeds: bool = False) -> dict[str, jax.Array]:
    """The chunk's trace as metrics ``trace/<name>`` [points]: each metric's mean over the point's iterations
    (averaged over devices, and over seeds), ``trace/count`` (iterations per point; 0: unused), the episode
    returns summed over devices (``trace/episode_return_sum``, ``trace/episodes``; a multi-seed run's also per
    seed as ``trace/seeds/...`` [seeds, points])."""
    if not isinstance(trace, jax.Array):
        return {}
    axis = mesh.AXIS
    k = len(names)
    count = trace[..., k]
    means = mesh.pmean(trace[..., :k] / jnp.maximum(count, 1.0)[..., None], axis)
    returns, episodes = mesh.psum(trace[..., k + 1], axis), mesh.psum(trace[..., k + 2], axis)
    if seeds:  # leading seed axis
        means, count = jnp.mean(means, axis=0), count[0]
    out = {f"trace/{name}": means[:, i] for i, name in enumerate(names)}
    out["trace/count"] = count
    if seeds:
        out["trace/seeds/episode_return_sum"], out["trace/seeds/episodes"] = returns, episodes
        returns, episodes = jnp.sum(returns, axis=0), jnp.sum(episodes, axis=0)
    out["trace/episode_return_sum"], out["trace/episodes"] = returns, episodes
    return out


def _flag_nonfinite(metrics: dict, names, bad_counts, training) -> None:
    """``nonfinite/<metric>``: whether any device (and seed) saw that metric not finite in the chunk;
    ``nonfinite/parameters``: whether the training state's floating-point leaves are not all finite at its end."""
    for i, k in enumerate(names):
        metrics[f"nonfinite/{k}"] = (bad_counts[i] > 0).astype(jnp.float32)
    finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(training) if jnp.issubdtype(x.dtype, jnp.floating)]
    metrics["nonfinite/parameters"] = jnp.logical_not(jnp.all(jnp.stack(finite))).astype(jnp.float32)


def _seeds_per_device(iteration, names, points: int = 0, stride: int = 1, curriculum: bool = False):
    """The chunk's per-device body for a multi-seed run: every leaf of the run state has a leading seed axis
    (``key`` and the curriculum too; ``iteration`` is shared), and each seed runs the one-seed loop, vmapped. Metrics
    are averaged over seeds as well; ``seeds/episode_return`` and ``seeds/episodes`` keep each seed's own."""
    axis = mesh.AXIS

    def per_device(run: RunState, scenarios: ScenarioBatch, num_iters):
        def one_seed(training, device, key, weights):
            scenarios_ = scenarios.replace(weights=weights) if curriculum else scenarios
            device_key = jax.random.fold_in(key, jax.lax.axis_index(axis))

            def step(carry):
                training, device, it, bad_at, bad_flags = carry
                out = iteration(scenarios_, training, device, jax.random.fold_in(device_key, it))
                it = it + 1
                flags = jnp.stack([jnp.logical_not(jnp.isfinite(out.metrics[k])) for k in names])
                first = jnp.logical_and(bad_at < 0, jnp.any(flags))
                return ((out.training, out.device, it, jnp.where(first, it, bad_at),
                         jnp.where(first, flags, bad_flags)), out.metrics, out.episodes)

            init = (training, device, run.iteration, jnp.int32(-1), jnp.zeros(len(names), bool))
            (training, device, _, bad_at, bad_flags), sums, episodes, trace = _iterate(step, init, num_iters, points,
                                                                                       stride, names)
            return training, device, sums, episodes, bad_at, bad_flags, trace

        weights = run.curriculum["weights"] if curriculum else jnp.zeros(run.key.shape[:1])
        training, device, sums, episodes, bad_at, bad_flags, trace = jax.vmap(one_seed)(run.training, run.device,
                                                                                         run.key, weights)
        run = run.replace(training=training, device=device, iteration=run.iteration + num_iters)
        n = jnp.maximum(num_iters, 1).astype(jnp.float32)
        metrics = {k: jnp.mean(mesh.pmean(sums[k] / n, axis)) for k in names}
        episodes = mesh.psum(episodes, axis)  # per seed
        count = jnp.sum(episodes.count)
        metrics["episode_return"] = jnp.sum(episodes.return_sum) / jnp.maximum(count, 1.0)
        metrics["episode_length"] = jnp.sum(episodes.length_sum) / jnp.maximum(count, 1.0)
        metrics["episodes"] = count
        metrics["seeds/episode_return"] = episodes.return_sum / jnp.maximum(episodes.count, 1.0)
        metrics["seeds/episodes"] = episodes.count
        bad_at = mesh.pmax(bad_at, axis)  # per seed; the first bad iteration of any seed
        metrics["nonfinite_iteration"] = jnp.where(jnp.any(bad_at >= 0),
                                                   jnp.min(jnp.where(bad_at >= 0, bad_at, jnp.iinfo(jnp.int32).max)),
                                                   -1)
        _flag_nonfinite(metrics, names, jnp.sum(mesh.psum(bad_flags.astype(jnp.int32), axis), axis=0), run.training)
        metrics.update(_trace_out(trace, names, seeds=True))
        return run, metrics

    return per_device


def seed_slice(tree: Any, k: int) -> Any:
    """Seed ``k``'s part of a multi-seed tree (every leaf's leading axis)."""
    return jax.tree.map(lambda x: x[k], tree)


def stack_seeds(trees: list[Any]) -> Any:
    """Trees of the seeds stacked leaf by leaf along a new leading seed axis (numpy)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _device_init(algorithm: Algorithm, config: Any, spec: EnvSpec, keys: jax.Array, scenarios: ScenarioBatch,
                 data: Any):
    """The compiled per-device state init for these inputs, and the partition specs of what it returns."""
    num_devices = mesh.device_count()
    seeds = num_seeds(config)

    def one(keys, scenarios, data):
        return algorithm.init_device_state(config, spec, scenarios, keys[0], num_devices, data)

    if seeds == 1:
        per_device = one
    else:  # keys [seeds, 1 device, ...], data leaves [seeds, this device's share, ...]
        def per_device(keys, scenarios, data):
            return jax.vmap(one, in_axes=(0, None, None if data is None else 0))(keys, scenarios, data)

    axis = 0 if seeds == 1 else 1  # the device axis of the inputs

    def local(x):  # one device's slice of a split global array
        shape = list(x.shape)
        shape[axis] //= num_devices
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    specs = mesh.per_device_specs(jax.eval_shape(per_device, local(keys), scenarios, jax.tree.map(local, data)),
                                  seeds > 1)
    split = mesh.sharded_spec(seeds > 1)
    init = jax.shard_map(per_device, mesh=mesh.make_mesh(), out_specs=specs, check_vma=False,
                         in_specs=(split, mesh.replicated_spec(), split))
    return jax.jit(init), specs


def initial_state(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, training: Any,
                  key: jax.Array, device_data: Any = None,
                  resume: loop.Resume | None = None) -> tuple[RunState, RunState]:
    """The run state on the mesh and its partition specs: fresh (the replicated ``training``, per-device state
    built on every device from ``key`` and its slice of ``device_data``), or restored from ``resume``."""
    num_devices = mesh.device_count()
    seeds = num_seeds(config)
    if seeds == 1:
        init_key, run_key = jax.random.split(key)
        device_keys = mesh.device_keys(init_key, num_devices)
    else:  # key: one per seed; each seed splits its own exactly as a one-seed run
        init_key, run_key = jnp.swapaxes(jax.vmap(jax.random.split)(key), 0, 1)
        device_keys = jax.vmap(mesh.device_keys, in_axes=(0, None))(init_key, num_devices)
    split = mesh.sharded_spec(seeds > 1)
    keys = mesh.put(np.asarray(device_keys), split)
    data = mesh.put(device_data, split) if device_data is not None else None
    init, device_specs = _device_init(algorithm, config, spec, keys, scenarios, data)
    specs = _specs(device_specs)
    fresh_curriculum = ()
    if config.scenarios.curriculum is not None:
        from rlpipe.rl import curriculum

        fresh_curriculum = curriculum.initial_state(scenarios.size, seeds)
    if resume is None:
        return RunState(mesh.put_replicated(mesh.host_copy(training)), init(keys, scenarios, data),
                        mesh.put_replicated(np.asarray(run_key)), mesh.put_replicated(np.int32(0)),
                        mesh.put_replicated(fresh_curriculum)), specs
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


def restore_state(algorithm: Algorithm, abstract: RunState, specs: RunState, resume: loop.Resume,
                  seeds: int = 1) -> RunState:
    """A run state on this mesh from a checkpoint tree (numpy, as loaded). Written on another device count, the
    per-device state is redistributed by the algorithm over the devices present (seed by seed in a multi-seed
    run)."""
    tree = dict(resume.tree)
    num_devices = mesh.device_count()
    if resume.num_devices != num_devices:
        logger.warning("resuming a checkpoint written on %d device(s) on %d: per-device state is redistributed over "
                       "the new devices, so this continuation is not bitwise identical to an uninterrupted run",
                       resume.num_devices, num_devices)
        if seeds == 1:
            tree["device"] = algorithm.redistribute_device_state(tree["device"], resume.num_devices, num_devices)
        else:
            tree["device"] = stack_seeds([
                algorithm.redistribute_device_state(seed_slice(tree["device"], k), resume.num_devices, num_devices)
                for k in range(seeds)])
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
    return RunState(training=mesh.put(restored["training"], specs.training),
                    device=mesh.put(restored["device"], specs.device),
                    key=mesh.put_replicated(restored["key"]), iteration=mesh.put_replicated(restored["iteration"]),
                    curriculum=mesh.put_replicated(restored["curriculum"]) if "curriculum" in restored else ())


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
    t = config.train
    seeds = num_seeds(config)
    env_steps, grad_steps = algorithm.steps_per_iteration(config)
    schedule = loop.Schedule.build(t, env_steps, grad_steps, algorithm.env_steps_before_training(config))
    global_scenarios = mesh.put_replicated(mesh.host_copy(scenarios))
    run, specs = initial_state(algorithm, config, spec, global_scenarios, training, key, device_data, resume)
    evaluate, precompile = None, None
    if eval_scenarios is not None:
        meta = algorithm.policy_meta(config, spec)
        evaluator = make_evaluator(spec, lambda p: policies.jax_policy({"meta": meta, "params": p}),
                                   max_episode_steps(eval_scenarios), evaluation_metrics(algorithm, config, spec))
        # host copies: one placement for the ahead-of-time compile and every later call
        params_of = lambda run: mesh.host_copy(algorithm.policy_params(run.training))  # noqa: E731
        if seeds == 1:
            evaluate = lambda run: (*evaluator(params_of(run), eval_scenarios), evaluator.last_metrics)  # noqa: E731
            precompile = lambda: evaluator.precompile(params_of(run), eval_scenarios)  # noqa: E731
        else:  # every seed on the same scenarios, one after the other (one compiled evaluator)
            evaluate = lambda run: _evaluate_seeds(evaluator, params_of(run), eval_scenarios, seeds)  # noqa: E731
            precompile = lambda: evaluator.precompile(seed_slice(params_of(run), 0), eval_scenarios)  # noqa: E731
    chunk, compile_s = compile_chunk(make_chunk(algorithm, config, spec, specs), run, global_scenarios,
                                     schedule.iters_per_chunk, alongside=precompile)
    if spec.host is not None:  # an env that raised in the chunk: stop before its results are used or checkpointed
        chunk = _raising_host_failures(chunk, spec.host)
    logger.info("train step compiled in %.1f s; up to %d iterations of %d env steps and %d gradient steps on %d "
                "device(s) in %d process(es)", compile_s, schedule.total_iters, schedule.env_steps_per_iter,
                schedule.grad_steps_per_iter, mesh.device_count(), mesh.process_count())
    e = getattr(config, "early_stopping", None)
    stopper = EarlyStopping(e.target_return, e.monitor, e.window, e.patience) if e is not None else None
    periodic = ()
    if on_policy is not None:
        every, deliver = on_policy
        meta = algorithm.policy_meta(config, spec)

        def deliver_policy(env_steps: int, run: RunState) -> None:  # a multi-seed run's first seed
            params = mesh.host_copy(algorithm.policy_params(run.training))
            params = policies.bundle_params(params if seeds == 1 else seed_slice(params, 0))
            extra = {} if seeds == 1 else {"seed_index": 0, "seed": config.seed}
            deliver(env_steps, {"meta": {**meta, **extra, "env_steps": env_steps}, "params": params})

        periodic = ((every, deliver_policy),)
    adapt = None
    if config.scenarios.curriculum is not None:
        adapt = (config.scenarios.curriculum.every_env_steps,
                 _curriculum_update(algorithm, config, spec, scenarios, seeds))
    run, history, final, curve = loop.run(schedule, run, chunk, evaluate=evaluate, checkpoint_tree=checkpoint_tree,
                                          on_progress=on_progress, on_checkpoint=on_checkpoint, stopper=stopper,
                                          resume=resume, periodic=periodic, adapt=adapt)
    if stopper is not None and stopper.stopped_at is not None:
        logger.info("early stop at %d env steps: windowed %s return %.1f >= target %.1f for %d checks",
                    stopper.stopped_at, e.monitor, stopper.values[-1], e.target_return, e.patience)
    final_curriculum = mesh.host_copy(run.curriculum) if adapt is not None else None
    return TrainResult(checkpoint_tree(run), history, final, curve, final_curriculum)


def _curriculum_update(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, seeds: int):
    """``adapt(run) -> (run, logged)`` of the loop: the current deterministic policy (every seed's) run once on every
    training scenario by one compiled evaluator, the curriculum re-weighted from its returns (or its failures on
    ``scenarios.curriculum.metric``) in the replicated run state."""
    from rlpipe.rl import curriculum

    c = config.scenarios.curriculum
    meta = algorithm.policy_meta(config, spec)
    evaluator = make_evaluator(spec, lambda p: policies.jax_policy({"meta": meta, "params": p}),
                               max_episode_steps(scenarios), (c.metric,) if c.metric else ())
    final_metric = f"{c.metric}_final"

    def adapt(run: RunState) -> tuple[RunState, dict[str, float]]:
        params = mesh.host_copy(algorithm.policy_params(run.training))
        if seeds == 1:
            returns, _ = evaluator(params, scenarios)
            metric = evaluator.last_metrics.get(final_metric) if c.metric else None
        else:
            returns, _, metrics = _evaluate_seeds(evaluator, params, scenarios, seeds)
            metric = metrics.get(final_metric) if c.metric else None
        state, logged = curriculum.update(returns, metric, c)
        return run.replace(curriculum=mesh.put_replicated(state)), logged

    return adapt


def evaluation_metrics(algorithm: Algorithm, config: Any, spec: EnvSpec) -> tuple[str, ...]:
    """The env metrics an evaluation reports: ``env.metrics`` and what the algorithm adds (multi-agent SAC: every
    agent's own reward, ``reward_<agent>``)."""
    extra = algorithm.evaluation_metrics
    names = list(config.env.metrics) + (list(extra(config, spec)) if extra is not None else [])
    return tuple(dict.fromkeys(names))


def _evaluate_seeds(evaluator, params: Any, scenarios: ScenarioBatch, seeds: int) -> tuple:
    """Each seed's policy on the same scenarios: returns and lengths [seeds, scenarios], env metrics likewise."""
    returns, lengths, metrics = [], [], []
    for k in range(seeds):
        r, l = evaluator(seed_slice(params, k), scenarios)
        returns.append(np.asarray(r))
        lengths.append(np.asarray(l))
        metrics.append({name: np.asarray(v) for name, v in (evaluator.last_metrics or {}).items()})
    return (np.stack(returns), np.stack(lengths),
            {name: np.stack([m[name] for m in metrics]) for name in metrics[0]})


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
