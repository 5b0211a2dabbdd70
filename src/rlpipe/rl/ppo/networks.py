"""PPO actor-critic: separate MLPs (or torsos by name); categorical logits for discrete actions, a Gaussian with a
state-independent log-std for continuous ones. The recurrent form puts an LSTM or GRU cell, shared by actor and
critic, between the observation and the two heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl.networks import ACTIVATIONS, MLP, select


class ActorCritic(nn.Module):
    hidden_sizes: Sequence[int]
    action_dim: int
    continuous: bool
    activation: str = "tanh"
    init_log_std: float = 0.0
    obs_mask: Sequence[int] | None = None
    actor_torso: Mapping[str, Any] | None = None
    critic_torso: Mapping[str, Any] | None = None

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(actor output: logits or mean, log_std (zeros for discrete), value)."""
        obs = select(obs, self.obs_mask)
        return _heads(self, obs, obs)


def _heads(module, actor_in: jax.Array, critic_in: jax.Array):
    actor = MLP(module.hidden_sizes, module.action_dim, module.activation, hidden_scale=np.sqrt(2), out_scale=0.01,
                torso=module.actor_torso, name="actor")(actor_in)
    value = MLP(module.hidden_sizes, 1, module.activation, hidden_scale=np.sqrt(2), out_scale=1.0,
                torso=module.critic_torso, name="critic")(critic_in)[..., 0]
    if module.continuous:
        log_std = module.param("log_std", nn.initializers.constant(module.init_log_std), (module.action_dim,))
    else:
        log_std = jnp.zeros((module.action_dim,))
    return actor, log_std, value


def state_size(cell: str, hidden_size: int) -> int:
    """Width of a recurrent policy's state per env: an LSTM's cell and hidden vectors side by side, a GRU's hidden."""
    return 2 * hidden_size if cell == "lstm" else hidden_size


class RecurrentActorCritic(ActorCritic):
    """One step of the recurrent actor-critic: observation -> dense embedding -> LSTM/GRU cell (state carried
    between steps, one flat vector per env) -> actor and critic heads on the cell's output (ActorCritic's fields,
    and the cell's)."""

    cell: str = "lstm"
    hidden_size: int = 64

    @nn.compact
    def __call__(self, obs: jax.Array, state: jax.Array):
        """(actor output, log_std, value, next state) for observations [B, obs] and states [B, state_size]."""
        x = ACTIVATIONS[self.activation](nn.Dense(self.hidden_size, kernel_init=nn.initializers.orthogonal(np.sqrt(2)),
                                                  bias_init=nn.initializers.zeros, name="embed")(
            select(obs, self.obs_mask)))
        h = self.hidden_size
        if self.cell == "lstm":
            (c, hidden), y = nn.OptimizedLSTMCell(h, name="cell")((state[..., :h], state[..., h:]), x)
            next_state = jnp.concatenate([c, hidden], axis=-1)
        else:
            next_state, y = nn.GRUCell(h, name="cell")(state, x)
        return (*_heads(self, y, y), next_state)


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
