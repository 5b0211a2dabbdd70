"""Network building blocks shared by the agents."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


class MLP(nn.Module):
    hidden_sizes: Sequence[int]
    out_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


def flatten_obs(obs: jax.Array) -> jax.Array:
    return jnp.reshape(obs, (obs.shape[0], -1)).astype(jnp.float32)
