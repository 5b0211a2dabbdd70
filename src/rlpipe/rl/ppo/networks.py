"""PPO actor-critic: separate MLPs; categorical logits for discrete actions, a Gaussian with a state-independent
log-std for continuous ones."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl.networks import MLP


class ActorCritic(nn.Module):
    hidden_sizes: Sequence[int]
    action_dim: int
    continuous: bool
    activation: str = "tanh"
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(actor output: logits or mean, log_std (zeros for discrete), value)."""
        actor = MLP(self.hidden_sizes, self.action_dim, self.activation, hidden_scale=np.sqrt(2), out_scale=0.01,
                    name="actor")(obs)
        value = MLP(self.hidden_sizes, 1, self.activation, hidden_scale=np.sqrt(2), out_scale=1.0,
                    name="critic")(obs)[..., 0]
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,))
        else:
            log_std = jnp.zeros((self.action_dim,))
        return actor, log_std, value


def log_prob(continuous: bool, actor_out: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    if continuous:
        z = (action - actor_out) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    logp = jax.nn.log_softmax(actor_out)
    return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(continuous: bool, actor_out: jax.Array, log_std: jax.Array) -> jax.Array:
    if continuous:
        return jnp.broadcast_to(jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e)), actor_out.shape[:-1])
    logp = jax.nn.log_softmax(actor_out)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def sample(continuous: bool, actor_out: jax.Array, log_std: jax.Array, key: jax.Array) -> jax.Array:
    if continuous:
        return actor_out + jnp.exp(log_std) * jax.random.normal(key, actor_out.shape)
    return jax.random.categorical(key, actor_out)


def mode(continuous: bool, actor_out: jax.Array) -> jax.Array:
    return actor_out if continuous else jnp.argmax(actor_out, axis=-1)
