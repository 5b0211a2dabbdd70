"""RNG keys: every pipeline stage derives its own key from the run seed; nothing global."""

from __future__ import annotations

import zlib

import jax


def stage_key(seed: int, stage: str) -> jax.Array:
    """The key of one stage: the run seed folded with the stage name (a CRC, stable across processes)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(stage.encode()) & 0x7FFFFFFF)
