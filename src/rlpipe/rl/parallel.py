"""Devices: how many, and moving pytrees between one copy and one-per-device (a leading device axis)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

AXIS = "devices"  # the pmap axis name gradients are averaged over


def device_count() -> int:
    """Local devices that training is pmapped over."""
    return jax.local_device_count()


def replicate(tree: Any, num_devices: int) -> Any:
    """One identical copy of every leaf per device: [...] -> [num_devices, ...]."""
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (num_devices,) + jnp.shape(x)), tree)


def unreplicate(tree: Any) -> Any:
    """The first device's copy: [num_devices, ...] -> [...]."""
    return jax.tree.map(lambda x: x[0], tree)


def shard(tree: Any, num_devices: int) -> Any:
    """Split the leading axis evenly: [n, ...] -> [num_devices, n / num_devices, ...]."""
    return jax.tree.map(lambda x: jnp.reshape(x, (num_devices, -1) + jnp.shape(x)[1:]), tree)


def pmapped_chunk(iteration, metric_names: tuple[str, ...]):
    """Many training iterations in one compiled call, pmapped over devices.

    ``iteration(scenarios, state) -> (state, metrics, episode_stats)`` is one algorithm iteration on one device
    (scalar ``metrics`` by name, ``EpisodeStats`` of the episodes it finished; ``state.iteration`` counts them).
    The returned ``chunk(state, scenarios, num_iters) -> (state, metrics)`` runs ``num_iters`` of them in a
    ``fori_loop`` (``num_iters`` is traced, so every chunk length shares one program) and averages the metrics over
    iterations and devices; episode statistics are summed over devices. The state argument is donated.

    Divergence is caught inside the loop at the cost of a few scalar checks: ``nonfinite_iteration`` is the first
    iteration whose metrics were not finite (-1 if none), ``nonfinite/<metric>`` flags which (1.0) at that
    iteration, and ``nonfinite/parameters`` whether the state's floating-point leaves are finite at the end.
    """
    from rlpipe.rl.acting import EpisodeStats

    def chunk(state, scenarios, num_iters):
        def body(_, carry):
            state, sums, episodes, bad_at, bad_flags = carry
            state, metrics, finished = iteration(scenarios, state)
            flags = jnp.stack([jnp.logical_not(jnp.isfinite(metrics[k])) for k in metric_names])
            first = jnp.logical_and(bad_at < 0, jnp.any(flags))
            bad_at = jnp.where(first, state.iteration, bad_at)
            bad_flags = jnp.where(first, flags, bad_flags)
            return state, {k: sums[k] + metrics[k] for k in metric_names}, episodes + finished, bad_at, bad_flags

        zero = {k: jnp.float32(0.0) for k in metric_names}
        init = (state, zero, EpisodeStats.zero(), jnp.int32(-1), jnp.zeros(len(metric_names), bool))
        state, sums, episodes, bad_at, bad_flags = jax.lax.fori_loop(0, num_iters, body, init)
        n = jnp.maximum(num_iters, 1).astype(jnp.float32)
        metrics = {k: jax.lax.pmean(sums[k] / n, AXIS) for k in metric_names}
        episodes = jax.lax.psum(episodes, AXIS)
        metrics["episode_return"] = episodes.return_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episode_length"] = episodes.length_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episodes"] = episodes.count
        metrics["nonfinite_iteration"] = jax.lax.pmax(bad_at, AXIS)
        bad_counts = jax.lax.psum(bad_flags.astype(jnp.int32), AXIS)
        for i, k in enumerate(metric_names):
            metrics[f"nonfinite/{k}"] = (bad_counts[i] > 0).astype(jnp.float32)
        finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state.training)
                  if jnp.issubdtype(x.dtype, jnp.floating)]
        params_bad = jnp.logical_not(jnp.all(jnp.stack(finite)))
        metrics["nonfinite/parameters"] = jax.lax.pmax(params_bad.astype(jnp.float32), AXIS)
        return state, metrics

    return jax.pmap(chunk, axis_name=AXIS, in_axes=(0, None, None), donate_argnums=(0,))


def compile_chunk(chunk, state, scenarios, num_iters: int, alongside=None):
    """Compile ``chunk`` ahead of time for these shapes: ``(run(state, n) -> (state, metrics), seconds)``.

    ``alongside`` (a no-argument callable, e.g. an evaluator's ``precompile``) runs on a second thread meanwhile:
    XLA compiles without holding the GIL, so two compilations share the cores instead of queueing.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(alongside) if alongside is not None else None
        compiled = chunk.lower(state, scenarios, jnp.int32(num_iters)).compile()
        if side is not None:
            side.result()
    seconds = time.perf_counter() - started
    return (lambda s, n: compiled(s, scenarios, jnp.int32(n))), seconds


def checkpoint_tree(run: Any) -> dict[str, Any]:
    """The checkpointable form of a run state (``training``, ``device``, ``iteration`` with a device axis): the
    training state once (it is identical on every device), the device states per device."""
    return {"training": unreplicate(run.training), "device": run.device, "iteration": run.iteration[0]}


def restore_run(template: Any, tree: Any) -> Any:
    """A run state (``training``/``device``/``iteration``, device axis first) from its checkpointed form.

    ``template`` is a run state of the right types and shapes (e.g. freshly initialized); ``tree`` is what
    ``checkpoint_tree`` saved, as loaded (nested dicts). The device count must be the one it was saved with.
    """
    from flax import serialization

    num_devices = template.iteration.shape[0]
    saved = jax.tree.leaves(tree["device"])[0].shape[0]
    if saved != num_devices:
        raise ValueError(f"the checkpoint holds {saved} device shards but {num_devices} devices are present: resume "
                         "with the same device count (XLA_FLAGS / visible devices) it was written with")
    typed = serialization.from_state_dict(checkpoint_tree(template), tree)
    return type(template)(training=replicate(typed["training"], num_devices),
                          device=jax.tree.map(jnp.asarray, typed["device"]),
                          iteration=jnp.full((num_devices,), typed["iteration"], jnp.int32))
