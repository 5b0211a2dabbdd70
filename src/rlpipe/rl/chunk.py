"""The compiled chunk's per-device body, written once for one seed: many iterations of the algorithm's
``iteration`` in one ``fori_loop``, then the chunk's statistics reduced over the devices.

A multi-seed run is this same body vmapped over the seed axis (``rlpipe.rl.seeds``): the collectives over the
device axis work inside the vmap, and the seeds' statistics are combined there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl import mesh
from rlpipe.rl.acting import EpisodeStats
from rlpipe.rl.envs import ScenarioBatch


@struct.dataclass
class RunState:
    training: Any  # identical on every device (replicated)
    device: Any  # each device's own: leading axis split over the mesh; scalars replicated
    key: jax.Array  # replicated, fixed for the run: folded with a device's global index and the iteration number
    iteration: jax.Array  # replicated int32: iterations done
    curriculum: Any = ()  # replicated: the curriculum's {"weights", "returns"} (rlpipe.rl.curriculum), or ()


# which parts of the run state carry the seed axis (all but the iteration count, which the seeds share)
SEED_AXES = RunState(training=0, device=0, key=0, iteration=None, curriculum=0)


def checkpoint_tree(run: RunState) -> dict[str, Any]:
    """What a checkpoint holds: the whole run state, each part once (the mesh layout is not a copy per device)."""
    tree = {"training": run.training, "device": run.device, "key": run.key, "iteration": run.iteration}
    if jax.tree.leaves(run.curriculum):
        tree["curriculum"] = run.curriculum
    return tree


class ChunkStats(NamedTuple):
    """One seed's chunk, reduced over the devices."""

    means: dict[str, jax.Array]  # each metric's mean over the chunk's iterations, averaged over devices
    episodes: EpisodeStats  # the episodes that ended, summed over devices
    bad_at: jax.Array  # the first iteration whose metrics were not finite on any device, -1 if none
    bad_counts: jax.Array  # [metrics] int32: devices that saw each metric not finite
    trace: Any  # () or {"means" [points, metrics], "count", "episode_return_sum", "episodes" [points]}, and with
    # an episode log "episode_log" [devices, capacity, 2] (return, when) and "episode_logged" [devices]


def make_body(iteration, names, points: int, stride: int, curriculum: bool, episode_log: int = 0):
    """``body(run, scenarios, num_iters) -> (run, ChunkStats)``: one seed's ``num_iters`` iterations (traced) on
    this device, every ``stride`` of them recorded as one point of the trace (``points`` of them; none if 0), and
    with a trace and ``episode_log`` > 0 the return of every episode that ends, up to ``episode_log`` a chunk."""
    axis = mesh.AXIS

    def body(run: RunState, scenarios: ScenarioBatch, num_iters):
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
            step, (run, jnp.int32(-1), jnp.zeros(len(names), bool)), num_iters, points, stride, names, episode_log)
        n = jnp.maximum(num_iters, 1).astype(jnp.float32)
        return run, ChunkStats(means={k: mesh.pmean(sums[k] / n, axis) for k in names},
                               episodes=mesh.psum(episodes, axis), bad_at=mesh.pmax(bad_at, axis),
                               bad_counts=mesh.psum(bad_flags.astype(jnp.int32), axis),
                               trace=_reduce_trace(trace, len(names)))

    return body


EPISODE_LOG_LIMIT = 1 << 16  # episode returns a chunk records on a device, at most (a chunk of short episodes)


def episode_log_size(schedule: Any, devices: int, seeds: int) -> int:
    """Room for the returns of every episode that can end in one chunk on one device (one per env step, at most
    ``EPISODE_LOG_LIMIT``); 0, no log, without a trace or in a many-seed run (its curve is one line per seed)."""
    if seeds > 1 or not schedule.trace_shape[0]:
        return 0
    return min(EPISODE_LOG_LIMIT, -(-schedule.iters_per_chunk * schedule.env_steps_per_iter // devices))


def chunk_metrics(stats: ChunkStats, names, training: Any, extra: dict[str, jax.Array] | None = None,
                  trace_extra: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
    """The chunk's metrics as the host loop reads them: each metric's mean, the episodes' mean return and length
    and their number (``extra`` after them), ``nonfinite_iteration`` and ``nonfinite/<metric>`` (1.0: some device
    saw it not finite), ``nonfinite/parameters`` (the training state's floating-point leaves not all finite at the
    chunk's end), and the trace as ``trace/<name>`` [points] (``trace_extra`` beside it)."""
    metrics = dict(stats.means)
    episodes = stats.episodes
    metrics["episode_return"] = episodes.return_sum / jnp.maximum(episodes.count, 1.0)
    metrics["episode_length"] = episodes.length_sum / jnp.maximum(episodes.count, 1.0)
    metrics["episodes"] = episodes.count
    metrics.update(extra or {})
    metrics["nonfinite_iteration"] = stats.bad_at
    for i, k in enumerate(names):
        metrics[f"nonfinite/{k}"] = (stats.bad_counts[i] > 0).astype(jnp.float32)
    finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(training) if jnp.issubdtype(x.dtype, jnp.floating)]
    metrics["nonfinite/parameters"] = jnp.logical_not(jnp.all(jnp.stack(finite))).astype(jnp.float32)
    if stats.trace:
        metrics.update({f"trace/{name}": stats.trace["means"][:, i] for i, name in enumerate(names)})
        metrics["trace/count"] = stats.trace["count"]
        metrics.update(trace_extra or {})
        metrics["trace/episode_return_sum"] = stats.trace["episode_return_sum"]
        metrics["trace/episodes"] = stats.trace["episodes"]
        if "episode_log" in stats.trace:
            metrics["trace/episode_log"] = stats.trace["episode_log"]
            metrics["trace/episode_logged"] = stats.trace["episode_logged"]
    return metrics


_TRACE_EXTRA = ("count", "episode_return_sum", "episodes")  # columns of the trace after the metrics


def _trace_zero(points: int, names) -> jax.Array | tuple:
    """An empty in-chunk trace [points, metrics + 3]: per point, each metric's sum, then the iterations, the
    returns of the episodes that ended and their number (one array: one update per iteration)."""
    if not points:
        return ()
    return jnp.zeros((points, len(names) + len(_TRACE_EXTRA)), jnp.float32)


def _reduce_trace(trace, k: int) -> Any:
    """This device's trace over the devices: each metric's mean per point (averaged over devices), the points'
    iteration counts, and the returns and number of the episodes that ended in them (summed over devices); an
    episode log gathered from every device."""
    if not trace:
        return ()
    trace, log = trace
    axis = mesh.AXIS
    count = trace[..., k]
    out = {"means": mesh.pmean(trace[..., :k] / jnp.maximum(count, 1.0)[..., None], axis), "count": count,
           "episode_return_sum": mesh.psum(trace[..., k + 1], axis), "episodes": mesh.psum(trace[..., k + 2], axis)}
    if log:
        out["episode_log"], out["episode_logged"] = (
            x[None] if jax.lax.axis_size(axis) == 1 else jax.lax.all_gather(x, axis) for x in log)
    return out


def _log_episodes(log, ended: jax.Array, at: jax.Array):
    """``log`` = (entries [capacity, 2], how many ended so far) with the episodes of one iteration appended in
    order: ``ended`` [steps, envs] is each one's return (NaN where none ended), its time ``at`` + (step + 1) / steps
    iterations into the chunk. Entries past the capacity are dropped (the count still counts them)."""
    entries, logged = log
    steps = ended.shape[0]
    when = jnp.broadcast_to((at + (jnp.arange(steps, dtype=jnp.float32) + 1.0) / steps)[:, None], ended.shape)
    returns, valid = ended.reshape(-1), jnp.logical_not(jnp.isnan(ended.reshape(-1)))
    slot = jnp.where(valid, logged + jnp.cumsum(valid) - 1, entries.shape[0])
    entries = entries.at[slot].set(jnp.stack([returns, when.reshape(-1)], axis=-1), mode="drop")
    return entries, logged + jnp.sum(valid, dtype=jnp.int32)


def _iterate(step, carry, num_iters, points: int, stride: int, names, episode_log: int = 0):
    """``step(carry) -> (carry, metrics, EpisodeStats)`` ``num_iters`` times (traced): returns the carry, each
    metric's sum, the episode statistics summed, and the trace (``()`` without points): ``(points array, episode
    log or ())``. With points the loop is nested: an outer loop over the points, an inner one over each point's
    ``stride`` iterations, the point's sums written once when its iterations are done; the episode log (see
    ``_log_episodes``) takes each iteration's ended episodes."""
    zero = ({k: jnp.float32(0.0) for k in names}, EpisodeStats.zero())

    def inner(_, state):
        carry, sums, episodes = state
        carry, metrics, stats = step(carry)
        return carry, {k: sums[k] + metrics[k] for k in names}, episodes + stats

    if not points:
        carry, sums, episodes = jax.lax.fori_loop(0, num_iters, inner, (carry, *zero))
        return carry, sums, episodes, ()

    def outer(j, state):
        carry, sums, episodes, (trace, log) = state
        n = jnp.minimum(stride, num_iters - j * stride)

        def logged(i, state):
            carry, point_sums, point_episodes, log = state
            carry, metrics, stats = step(carry)
            if not isinstance(stats.ended, tuple):  # an iteration whose unroll gave each episode's return
                at = (j * stride + i).astype(jnp.float32)  # most iterations end no episode: nothing to write
                log = jax.lax.cond(jnp.any(jnp.logical_not(jnp.isnan(stats.ended))),
                                   lambda log: _log_episodes(log, stats.ended, at), lambda log: log, log)
            return carry, {k: point_sums[k] + metrics[k] for k in names}, point_episodes + stats, log

        if log:
            carry, point_sums, point_episodes, log = jax.lax.fori_loop(0, n, logged, (carry, *zero, log))
        else:
            carry, point_sums, point_episodes = jax.lax.fori_loop(0, n, inner, (carry, *zero))
        row = jnp.stack([*(point_sums[k] for k in names), n.astype(jnp.float32), point_episodes.return_sum,
                         point_episodes.count])
        return (carry, {k: sums[k] + point_sums[k] for k in names}, episodes + point_episodes,
                (jax.lax.dynamic_update_index_in_dim(trace, row, j, 0), log))

    log = (jnp.zeros((episode_log, 2), jnp.float32), jnp.int32(0)) if episode_log else ()
    state = (carry, *zero, (_trace_zero(points, names), log))
    return jax.lax.fori_loop(0, (num_iters + stride - 1) // stride, outer, state)
