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
