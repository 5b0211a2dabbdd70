"""RNG keys: every pipeline stage derives its own key from the run seed; nothing global."""

from __future__ import annotations

import zlib

import jax


def stage_key(seed: int, stage: str) -> jax.Array:
    """The key of one stage: the run seed folded with the stage name (a CRC, stable across processes)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(stage.encode()) & 0x7FFFFFFF)


def num_seeds(config) -> int:
    return int(getattr(config.train, "num_seeds", 1))


def run_seeds(config) -> list[int]:
    """The seeds of a run's agents: ``seed``, and with ``train.num_seeds: N`` also ``seed + 1 ... seed + N - 1``.
    Agent k of a multi-seed run draws every key exactly as a one-seed run with seed ``seed + k`` does."""
    return [config.seed + k for k in range(num_seeds(config))]


def stage_keys(config, stage: str) -> jax.Array:
    """``stage_key`` of every seed of the run, stacked (a leading seed axis) when it has several."""
    import jax.numpy as jnp

    seeds = run_seeds(config)
    if len(seeds) == 1:
        return stage_key(seeds[0], stage)
    return jnp.stack([stage_key(seed, stage) for seed in seeds])


def scenario_seed(config) -> int:
    """The scenario tables' seed: ``scenarios.seed``, or the run's seed (shared by all its agents)."""
    seed = getattr(config.scenarios, "seed", None)
    return config.seed if seed is None else seed
