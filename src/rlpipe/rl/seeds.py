"""The seed axis of a run: the one module that knows how many agents a run trains.

A run of ``train.num_seeds: N`` trains N independent agents in one compiled program; agent k draws every key
exactly as a one-seed run with seed ``seed + k`` does. Its per-seed state carries a leading seed axis; a one-seed
run's carries none (its checkpoints, policies and bits are those of a plain run). Everything that differs between
the two lives here: the keys of every seed, stacking and slicing, the vmap of the one-seed chunk body (and its
statistics combined over the seeds), per-seed evaluation and redistribution, and the per-seed history columns.
Code elsewhere calls these for any number of seeds and never asks how many there are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl import mesh
from rlpipe.rl.chunk import SEED_AXES, ChunkStats, RunState, chunk_metrics
from rlpipe.rl.keys import stage_key


def num_seeds(config: Any) -> int:
    return int(getattr(config.train, "num_seeds", 1))


def run_seeds(config: Any) -> list[int]:
    """The seeds of a run's agents: ``seed``, and with ``train.num_seeds: N`` also ``seed + 1 ... seed + N - 1``.
    Agent k of a multi-seed run draws every key exactly as a one-seed run with seed ``seed + k`` does."""
    return [config.seed + k for k in range(num_seeds(config))]


def stage_keys(config: Any, stage: str) -> jax.Array:
    """``stage_key`` of every seed of the run, stacked (a leading seed axis) when it has several."""
    return Seeds.of(config).join([stage_key(seed, stage) for seed in run_seeds(config)])


def seed_slice(tree: Any, k: int) -> Any:
    """Seed ``k``'s part of a multi-seed tree (every leaf's leading axis)."""
    return jax.tree.map(lambda x: x[k], tree)


def stack_seeds(trees: list[Any]) -> Any:
    """Trees of the seeds stacked leaf by leaf along a new leading seed axis (numpy)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


@dataclass(frozen=True)
class Seeds:
    """How a run's per-seed state is laid out: no seed axis for one seed, a leading one for several; on the mesh,
    every seed over all devices, or the seeds spread over groups of devices (``rlpipe.rl.mesh.seed_groups``)."""

    count: int
    first: int  # the run's seed: agent k's is first + k
    per_device: int | None = None  # train.seeds_per_device: None lets mesh.seed_groups choose

    @staticmethod
    def of(config: Any) -> Seeds:
        return Seeds(num_seeds(config), int(config.seed), getattr(config.train, "seeds_per_device", None))

    @property
    def _stacked(self) -> bool:
        return self.count > 1

    @property
    def groups(self) -> int:
        """The seed groups of the mesh (1: every seed over every device); asks the backend for its devices."""
        return mesh.seed_groups(self.count, self.per_device, mesh.device_count(), mesh.process_count())

    @property
    def _grouped(self) -> bool:
        return self.groups > 1

    @property
    def data_devices(self) -> int:
        """The devices each seed's data (envs, batch, buffer) is split over: its group's."""
        return mesh.device_count() // self.groups

    def mesh(self):
        return mesh.make_mesh(self.groups)

    def put(self, tree: Any, specs: Any) -> Any:
        """Host arrays -> global arrays laid out by ``specs`` on this run's mesh."""
        return mesh.put(tree, specs, self.groups)

    def seed_spec(self):
        """The spec of what each seed has once (its training state, its key)."""
        return mesh.seed_spec(self._grouped)

    def each(self, tree: Any) -> list[Any]:
        """Every seed's own tree."""
        return [seed_slice(tree, k) for k in range(self.count)] if self._stacked else [tree]

    def join(self, trees: list[Any]) -> Any:
        """The run's tree from every seed's own (``each`` reversed)."""
        if self._stacked:
            return jnp.stack(trees) if isinstance(trees[0], jax.Array) else stack_seeds(trees)
        return trees[0]

    def map(self, fn: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
        """``fn`` of one seed's arguments applied to every seed's (vmapped over the seed axis)."""
        return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes) if self._stacked else fn

    @property
    def device_axis(self) -> int:
        """The axis of per-device inputs split over the devices (after the seed axis, if any)."""
        return 1 if self._stacked else 0

    def sharded_spec(self):
        return mesh.sharded_spec(self._stacked, self._grouped)

    def per_device_specs(self, tree: Any) -> Any:
        return mesh.per_device_specs(tree, self._stacked, self._grouped)

    def chunk_body(self, body: Callable, names) -> Callable:
        """The chunk's per-device function ``(run, scenarios, num_iters) -> (run, metrics)`` from the one-seed
        ``body`` (``rlpipe.rl.chunk.make_body``): for several seeds, one vmap of it over the seed axis, the
        metrics averaged over seeds too, ``seeds/episode_return`` and ``seeds/episodes`` keeping each seed's own."""
        if not self._stacked:
            def one(run: RunState, scenarios, num_iters):
                run, stats = body(run, scenarios, num_iters)
                return run, chunk_metrics(stats, names, run.training)
            return one

        if self._grouped:
            return _grouped_body(body, names, self.count // self.groups)
        many = jax.vmap(body, in_axes=(SEED_AXES, None, None), out_axes=(SEED_AXES, 0))

        def per_device(run: RunState, scenarios, num_iters):
            run, stats = many(run, scenarios, num_iters)
            combined, extra, trace_extra = _over_seeds(stats)
            return run, chunk_metrics(combined, names, run.training, extra, trace_extra)

        return per_device

    def evaluate(self, evaluator, params: Any, scenarios: Any) -> tuple:
        """Each seed's policy on the same scenarios (one after the other, one compiled evaluator): returns and
        lengths [scenarios] ([seeds, scenarios] for several), the env metrics likewise."""
        runs = []
        for p in self.each(params):
            r, l = evaluator(p, scenarios)
            runs.append((np.asarray(r), np.asarray(l),
                         {name: np.asarray(v) for name, v in (evaluator.last_metrics or {}).items()}))
        returns, lengths, metrics = zip(*runs)
        return self.join(list(returns)), self.join(list(lengths)), self.join(list(metrics))

    def first_policy(self, params: Any) -> tuple[Any, dict[str, Any]]:
        """The first seed's policy parameters and what its bundle's metadata adds (which seed it is)."""
        extra = {"seed_index": 0, "seed": self.first} if self._stacked else {}
        return self.each(params)[0], extra



def over_seeds(config: Any, make: Callable[[int], Any]) -> Any:
    """``make(seed)`` for a one-seed run; for a many-seed run every seed's ``make(seed)`` stacked on a leading seed
    axis (seed k's exactly what a one-seed run with that seed makes)."""
    seeds = run_seeds(config)
    return make(seeds[0]) if len(seeds) == 1 else stack_seeds([make(seed) for seed in seeds])


def _alone(body: Callable) -> Callable:
    """``body`` of one seed on a seed axis of one: the seed's own program, not a vmap of one (XLA compiles that
    differently), so a seed alone on its devices trains bitwise as the one-seed run with its seed does."""
    at = lambda tree, f: jax.tree.map(f, tree)  # noqa: E731

    def one(run: RunState, scenarios, num_iters):
        mine = run.replace(training=at(run.training, lambda x: x[0]), device=at(run.device, lambda x: x[0]),
                           key=run.key[0], curriculum=at(run.curriculum, lambda x: x[0]))
        mine, stats = body(mine, scenarios, num_iters)
        return (mine.replace(training=at(mine.training, lambda x: x[None]), device=at(mine.device, lambda x: x[None]),
                             key=mine.key[None], curriculum=at(mine.curriculum, lambda x: x[None])),
                at(stats, lambda x: x[None]))

    return one


def _grouped_body(body: Callable, names, local: int) -> Callable:
    """The per-device chunk of a run whose seeds are spread over seed groups: the one-seed ``body`` on this group's
    ``local`` seeds (vmapped if several), nothing crossing groups but, once a chunk, the seeds' statistics gathered
    to be combined as on one device. The curriculum stays replicated: each group reads its own seeds' rows."""
    many = jax.vmap(body, in_axes=(SEED_AXES, None, None), out_axes=(SEED_AXES, 0)) if local > 1 else _alone(body)

    def per_device(run: RunState, scenarios, num_iters):
        first = jax.lax.axis_index(mesh.SEED_AXIS) * local
        curriculum = run.curriculum
        mine = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, first, local), curriculum)
        run, stats = many(run.replace(curriculum=mine), scenarios, num_iters)
        combined, extra, trace_extra = _over_seeds(_gather_seeds(stats))
        metrics = chunk_metrics(combined, names, run.training, extra, trace_extra)
        metrics["nonfinite/parameters"] = jax.lax.pmax(metrics["nonfinite/parameters"], mesh.SEED_AXIS)
        return run.replace(curriculum=curriculum), metrics

    return per_device


def _gather_seeds(tree: Any) -> Any:
    """Every group's seeds' ``tree`` (leading local seed axis) in every group, gathered as one flat buffer per
    dtype (:func:`rlpipe.rl.mesh.per_dtype_buffer`)."""
    return mesh.per_dtype_buffer(tree, lambda rows: jax.lax.all_gather(rows, mesh.SEED_AXIS, tiled=True), keep=1)


def _over_seeds(stats: ChunkStats) -> tuple[ChunkStats, dict[str, jax.Array], dict[str, jax.Array]]:
    """The seeds' chunk statistics (a leading seed axis) as one run's, and the per-seed metrics kept beside them
    (``seeds/...``, and ``trace/seeds/...`` [seeds, points])."""
    episodes = stats.episodes
    bad_at = stats.bad_at  # per seed; the run's is the first bad iteration of any seed
    first_bad = jnp.where(jnp.any(bad_at >= 0), jnp.min(jnp.where(bad_at >= 0, bad_at, jnp.iinfo(jnp.int32).max)), -1)
    trace, trace_extra = stats.trace, {}
    if trace:
        trace_extra = {"trace/seeds/episode_return_sum": trace["episode_return_sum"],
                       "trace/seeds/episodes": trace["episodes"]}
        trace = {"means": jnp.mean(trace["means"], axis=0), "count": trace["count"][0],
                 "episode_return_sum": jnp.sum(trace["episode_return_sum"], axis=0),
                 "episodes": jnp.sum(trace["episodes"], axis=0)}
    combined = ChunkStats(means={k: jnp.mean(v) for k, v in stats.means.items()},
                          episodes=jax.tree.map(jnp.sum, episodes), bad_at=first_bad,
                          bad_counts=jnp.sum(stats.bad_counts, axis=0), trace=trace)
    extra = {"seeds/episode_return": episodes.return_sum / jnp.maximum(episodes.count, 1.0),
             "seeds/episodes": episodes.count}
    return combined, extra, trace_extra


# ------------------------------------------------------------------------------------ the host loop's columns
SEED_PREFIX = "seeds/"  # the chunk metrics that keep one value per seed


def history_columns(per_seed: dict[str, np.ndarray], final: dict[str, Any] | None) -> dict[str, float]:
    """A multi-seed run's own history columns (none for one seed): each seed's training return and, at
    evaluations, its eval mean (NaN in rows without one)."""
    out: dict[str, float] = {}
    if "episode_return" not in per_seed:
        return out
    for i, (value, count) in enumerate(zip(per_seed["episode_return"], per_seed["episodes"])):
        out[f"seed{i}.episode_return"] = float(value) if count > 0 else float("nan")
    if final is not None and final["returns"].ndim == 2:
        out.update({f"seed{i}.eval_return_mean": float(v) for i, v in enumerate(final["returns"].mean(axis=1))})
    else:
        out.update({f"seed{i}.eval_return_mean": float("nan") for i in range(len(per_seed["episode_return"]))})
    return out


def curve_columns(seed_trace: dict[str, np.ndarray], j: int) -> dict[str, float]:
    """Point ``j``'s per-seed columns of the curve (``seed<k>.episode_return``; none for one seed), from a
    chunk's per-seed trace (its ``trace/seeds/...`` metrics, prefixes removed: ``episode_return_sum``,
    ``episodes`` [seeds, points]; empty for one seed)."""
    if not seed_trace:
        return {}
    returns, episodes = seed_trace["episode_return_sum"], seed_trace["episodes"]
    return {f"seed{k}.episode_return": float(returns[k, j] / episodes[k, j]) if episodes[k, j] > 0 else float("nan")
            for k in range(len(returns))}
