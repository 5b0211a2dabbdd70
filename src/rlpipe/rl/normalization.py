"""Running mean/variance of observations, merged across devices (Chan et al.'s parallel update)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl import mesh


@struct.dataclass
class RunningStats:
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @staticmethod
    def init(dim: int) -> RunningStats:
        # a tiny prior count (as Stable-Baselines3's VecNormalize) keeps the first update well defined
        return RunningStats(jnp.zeros(dim, jnp.float32), jnp.ones(dim, jnp.float32), jnp.float32(1e-4))


def update(stats: RunningStats, batch: jax.Array, axis_name: str | None = None) -> RunningStats:
    """Fold a batch [..., dim] into the statistics; with ``axis_name`` the batch is every device's batch together
    (equal sizes per device), so all devices end with the same statistics."""
    x = batch.reshape(-1, batch.shape[-1]).astype(jnp.float32)
    n = jnp.float32(x.shape[0])
    mean = jnp.mean(x, axis=0)
    mean = mesh.pmean(mean, axis_name)
    n = mesh.psum(n, axis_name)
    var = mesh.pmean(jnp.mean((x - mean) ** 2, axis=0), axis_name)
    total = stats.count + n
    delta = mean - stats.mean
    new_mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + var * n + delta**2 * stats.count * n / total
    return RunningStats(new_mean, m2 / total, total)


def normalize(stats: RunningStats, obs: jax.Array, clip: float = 10.0) -> jax.Array:
    return jnp.clip((obs - stats.mean) / jnp.sqrt(stats.var + 1e-8), -clip, clip)
