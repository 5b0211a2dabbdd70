"""RNG keys: every pipeline stage derives its own key from the run seed; nothing global. (The keys of every seed
of a multi-seed run: ``rlpipe.rl.seeds``.)"""

from __future__ import annotations

import zlib

import jax


def stage_key(seed: int, stage: str) -> jax.Array:
    """The key of one stage: the run seed folded with the stage name (a CRC, stable across processes)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(stage.encode()) & 0x7FFFFFFF)


def scenario_seed(config) -> int:
    """The scenario tables' seed: ``scenarios.seed``, or the run's seed (shared by all its agents)."""
    seed = getattr(config.scenarios, "seed", None)
    return config.seed if seed is None else seed
