"""Network building blocks shared by the agents."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


class MLP(nn.Module):
    """Dense layers; with ``hidden_scale``/``out_scale`` the kernels are orthogonal with that gain (biases 0),
    otherwise flax's default (LeCun normal)."""

    hidden_sizes: Sequence[int]
    out_dim: int
    activation: str = "relu"
    hidden_scale: float | None = None
    out_scale: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(_dense(width, self.hidden_scale)(x))
        return _dense(self.out_dim, self.out_scale)(x)


def _dense(width: int, scale: float | None) -> nn.Dense:
    if scale is None:
        return nn.Dense(width)
    return nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale), bias_init=nn.initializers.zeros)


def flatten_obs(obs: jax.Array) -> jax.Array:
    return jnp.reshape(obs, (obs.shape[0], -1)).astype(jnp.float32)
