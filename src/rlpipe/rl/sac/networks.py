"""SAC networks: a tanh-squashed Gaussian actor and twin Q critics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlpipe.rl.networks import MLP, select

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_LOG2 = 0.6931471805599453


class Actor(nn.Module):
    """obs -> (mean, log_std) of the pre-tanh Gaussian; log_std clipped to [-20, 2]."""

    hidden_sizes: Sequence[int]
    action_dim: int
    activation: str = "relu"
    obs_mask: Sequence[int] | None = None  # the observation components it sees (None: all)
    torso: Mapping[str, Any] | None = None  # a torso by name in place of the hidden_sizes MLP
    weight_init: str = "lecun_normal"  # network.init: how the MLP layers start

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.action_dim, self.activation, torso=self.torso,
                  weight_init=self.weight_init)(
            select(obs, self.obs_mask))
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class TwinCritic(nn.Module):
    """(obs, action) -> Q-values of two independent critics, shape [2, batch]."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    obs_mask: Sequence[int] | None = None
    torso: Mapping[str, Any] | None = None
    weight_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([select(obs, self.obs_mask), action], axis=-1)
        q1 = MLP(self.hidden_sizes, 1, self.activation, torso=self.torso, weight_init=self.weight_init, name="q1")(x)
        q2 = MLP(self.hidden_sizes, 1, self.activation, torso=self.torso, weight_init=self.weight_init, name="q2")(x)
        return jnp.stack([q1[..., 0], q2[..., 0]])


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log-density of ``tanh(u)`` for ``u ~ N(mean, exp(log_std))`` at ``u = pre_tanh``, summed over action dims.

    The Jacobian term log(1 - tanh(u)^2) is written as 2 (log 2 - u - softplus(-2u)), which stays finite at
    large |u| where 1 - tanh(u)^2 underflows.
    """
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (_LOG2 - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gaussian - log_det, axis=-1)


def sample_tanh_gaussian(mean: jax.Array, log_std: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A reparameterized squashed sample in (-1, 1) and its log-probability."""
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std)


def deterministic_action(mean: jax.Array) -> jax.Array:
    """The evaluation action: tanh of the Gaussian mean."""
    return jnp.tanh(mean)
