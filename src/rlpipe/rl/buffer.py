"""On-device ring buffer of transitions: init / insert / sample. One buffer per device (its shard)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl.acting import Transition


@struct.dataclass
class BufferState:
    data: Transition  # every leaf [capacity, ...]
    position: jax.Array  # int32: the slot the next transition goes to
    size: jax.Array  # int32: filled slots (<= capacity)

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def init_buffer(capacity: int, obs_dim: int, action_dim: int) -> BufferState:
    """An empty buffer of ``capacity`` float32 transitions."""
    f32 = jnp.float32
    data = Transition(
        obs=jnp.zeros((capacity, obs_dim), f32),
        action=jnp.zeros((capacity, action_dim), f32),
        reward=jnp.zeros((capacity,), f32),
        discount=jnp.zeros((capacity,), f32),
        next_obs=jnp.zeros((capacity, obs_dim), f32),
    )
    return BufferState(data=data, position=jnp.int32(0), size=jnp.int32(0))


def insert(buffer: BufferState, batch: Transition) -> BufferState:
    """Write ``batch`` (leading axis n <= capacity) at the write position, wrapping around the end."""
    n = batch.reward.shape[0]
    if n > buffer.capacity:
        raise ValueError(f"cannot insert {n} transitions into a buffer of capacity {buffer.capacity}")
    slots = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity
    data = jax.tree.map(lambda store, new: store.at[slots].set(new.astype(store.dtype)), buffer.data, batch)
    return BufferState(
        data=data,
        position=(buffer.position + n) % buffer.capacity,
        size=jnp.minimum(buffer.size + n, buffer.capacity),
    )


def sample(buffer: BufferState, key: jax.Array, batch_size: int) -> Transition:
    """``batch_size`` transitions drawn uniformly (with replacement) from the filled slots only."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[index], buffer.data)


def flatten_time(batch: Transition) -> Transition:
    """[time, envs, ...] -> [time * envs, ...] (time-major order, as inserted)."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
