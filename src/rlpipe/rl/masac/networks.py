"""Multi-agent SAC networks on joint observations [batch, agents x obs] and joint actions [batch, agents x action].

``SharedActor``: one set of weights for every agent, fed its own observation and a one-hot agent id; gives each
agent's tanh-Gaussian [batch, agents, action]. ``AttentionCritic`` (MAAC, Iqbal & Sha 2019): agent i's Q-value from
its own encoded observation and action, and from an attention-weighted sum over the *other* agents' encoded
observations and actions (keys and values carry no agent id and the weights sum over the others, so the order in
which the others come does not matter); ``attention=False`` leaves the attention out: each critic sees only its own
agent (independent learners). ``TwinCritic`` stacks two of them: [2, batch, agents].

Discrete actions (``discrete=True``, ``action_dim`` = the number of actions ``n``): the actor gives each agent's
logits [batch, agents, n] (a categorical policy), and agent i's critic gives a Q-value for each of agent i's own
actions given the others' actions, [batch, agents, n] (MAAC's discrete form: the own encoding takes no action).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlpipe.rl.networks import ACTIVATIONS, MLP
from rlpipe.rl.sac.networks import LOG_STD_MAX, LOG_STD_MIN


def split_agents(x: jax.Array, num_agents: int) -> jax.Array:
    """[batch, agents x d] -> [batch, agents, d]."""
    return x.reshape(x.shape[:-1] + (num_agents, x.shape[-1] // num_agents))


def join_agents(x: jax.Array) -> jax.Array:
    """[batch, agents, d] -> [batch, agents x d]: per-agent values side by side, as the critics and the joint env
    take them (a joint array passes unchanged)."""
    return x.reshape(x.shape[0], -1)


def agent_ids(num_agents: int, like: jax.Array) -> jax.Array:
    """One-hot ids [.., agents, agents] broadcast to ``like``'s leading axes ([.., agents, d])."""
    return jnp.broadcast_to(jnp.eye(num_agents, dtype=like.dtype), like.shape[:-1] + (num_agents,))


class SharedActor(nn.Module):
    hidden_sizes: Sequence[int]
    action_dim: int  # per agent
    num_agents: int
    activation: str = "relu"
    discrete: bool = False

    def setup(self):
        self.mlp = MLP(self.hidden_sizes, (1 if self.discrete else 2) * self.action_dim, self.activation)

    def __call__(self, obs: jax.Array) -> Any:
        """Joint observations [batch, agents x obs] -> every agent's (mean, log_std) [batch, agents, action], or
        its logits [batch, agents, n] when discrete."""
        own = split_agents(obs, self.num_agents)
        return self.agent(jnp.concatenate([own, agent_ids(self.num_agents, own)], axis=-1))

    def agent(self, obs_and_id: jax.Array) -> Any:
        """One agent's observation followed by its one-hot id [.., obs + agents] -> its (mean, log_std), or its
        logits when discrete."""
        out = self.mlp(obs_and_id)
        if self.discrete:
            return out
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class AttentionCritic(nn.Module):
    hidden_sizes: Sequence[int]
    num_agents: int
    embed_dim: int = 64
    heads: int = 4
    activation: str = "relu"
    attention: bool = True
    num_actions: int = 0  # discrete: Q-values of agent i's own n actions [.., agents, n] (its own action unused)

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        n = self.num_agents
        o, a = split_agents(obs, n), split_agents(action, n)
        ids = agent_ids(n, o)
        own_in = [o, ids] if self.num_actions else [o, a, ids]
        own = act(nn.Dense(self.embed_dim, name="own")(jnp.concatenate(own_in, axis=-1)))
        features = [own]
        if self.attention:
            head = self.embed_dim // self.heads
            others = act(nn.Dense(self.embed_dim, name="encode")(jnp.concatenate([o, a], axis=-1)))
            query_in = act(nn.Dense(self.embed_dim, name="state")(jnp.concatenate([o, ids], axis=-1)))
            shape = others.shape[:-1] + (self.heads, head)
            q = nn.Dense(self.embed_dim, use_bias=False, name="query")(query_in).reshape(shape)
            k = nn.Dense(self.embed_dim, use_bias=False, name="key")(others).reshape(shape)
            v = act(nn.Dense(self.embed_dim, name="value")(others)).reshape(shape)
            logits = jnp.einsum("...ihd,...jhd->...hij", q, k) / jnp.sqrt(jnp.float32(head))
            logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logits)  # agent i attends to the others only
            weights = jax.nn.softmax(logits, axis=-1)
            attended = jnp.einsum("...hij,...jhd->...ihd", weights, v)
            features.append(attended.reshape(attended.shape[:-2] + (self.embed_dim,)))
        out = MLP(self.hidden_sizes, self.num_actions or 1, self.activation)(jnp.concatenate(features, axis=-1))
        return out if self.num_actions else out[..., 0]


class TwinCritic(AttentionCritic):
    """Two independent critics of the same form: [2, batch, agents] ([2, batch, agents, n] when discrete)."""

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        fields = (self.hidden_sizes, self.num_agents, self.embed_dim, self.heads, self.activation, self.attention,
                  self.num_actions)
        return jnp.stack([AttentionCritic(*fields, name=name)(obs, action) for name in ("q1", "q2")])
