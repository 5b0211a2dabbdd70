"""On-device ring buffer of transitions: init / insert / sample, one per device (its shard of the global buffer);
redistribute when a checkpoint moves to another device count."""

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


def redistribute(buffer: dict, old_shards: int, new_shards: int) -> dict:
    """A checkpointed buffer (numpy, ``{"data", "position", "size"}``; ``old_shards`` equal ring-buffer shards
    along the leading axis, all with the same write position and size) re-dealt into ``new_shards`` shards.

    Every shard's transitions are taken oldest first, interleaved over shards, and dealt round-robin to the new
    shards, so each new shard is a valid ring buffer in time order. When their number does not divide evenly, the
    oldest few are dropped.
    """
    import numpy as np

    data = buffer["data"]
    capacity = int(np.shape(next(iter(data.values())))[0])
    old_capacity, new_capacity = capacity // old_shards, capacity // new_shards
    position, size = int(buffer["position"]), int(buffer["size"])
    oldest_first = np.arange(size) if size < old_capacity else (position + np.arange(old_capacity)) % old_capacity
    order = (oldest_first[:, None] + old_capacity * np.arange(old_shards)[None, :]).reshape(-1)  # time-major
    kept = order.size - order.size % new_shards
    per_shard = kept // new_shards
    dealt = order[order.size - kept:].reshape(per_shard, new_shards).T  # [new_shards, per_shard], time order
    out = {}
    for name, values in data.items():
        values = np.asarray(values)
        target = np.zeros_like(values)
        for shard in range(new_shards):
            target[shard * new_capacity: shard * new_capacity + per_shard] = values[dealt[shard]]
        out[name] = target
    return {"data": out, "position": np.int32(per_shard % new_capacity), "size": np.int32(per_shard)}
