"""Multi-agent SAC as an algorithm plugin: SAC's machinery (replay buffer of joint transitions per device shard,
prefill, the fused iteration, checkpoints, evaluation) with a shared actor and per-agent twin critics that attend
over the other agents (MAAC). One temperature for the shared actor, against an entropy target per agent; each
agent's critic target uses that agent's own entropy term, the team reward and the joint next action. Discrete-action
envs get the categorical form (``rlpipe.rl.masac.discrete``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from rlpipe.rl import policies
from rlpipe.rl.acting import scale_to_bounds
from rlpipe.rl.masac import discrete
from rlpipe.rl.masac.config import MASACConfig
from rlpipe.rl.masac.networks import SharedActor, TwinCritic, join_agents
from rlpipe.rl.sac import losses
from rlpipe.rl.sac.algorithm import SACAlgorithm, make_optimizer, make_update_step
from rlpipe.rl.sac.networks import deterministic_action


@dataclass(frozen=True)
class MASACNetworks:
    actor: SharedActor
    critic: TwinCritic

    @staticmethod
    def from_meta(meta: dict[str, Any]) -> MASACNetworks:
        hidden, activation, n = tuple(meta["hidden_sizes"]), meta["activation"], meta["num_agents"]
        attention, num_actions = meta["attention"], meta.get("num_actions", 0)
        return MASACNetworks(
            SharedActor(hidden, meta["agent_action_dim"], n, activation, discrete=bool(num_actions)),
            TwinCritic(hidden, n, attention["embed_dim"], attention["heads"], activation,
                       meta["critic_form"] == "attention", num_actions))


@dataclass(frozen=True)
class JointActionCritic:
    """The twin critics as SAC's update calls them: with the actor's per-agent actions [batch, agents, action] (or
    stored joint ones), joined as the critics take them."""

    critic: TwinCritic

    def apply(self, params: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.critic.apply(params, obs, join_agents(action))


def per_agent_critic_target(reward: jax.Array, discount: jax.Array, next_q: jax.Array, next_log_prob: jax.Array,
                            alpha: jax.Array, gamma: float) -> jax.Array:
    """SAC's target for each agent [batch, agents]: the team reward and discount [batch] broadcast over the agents,
    each agent's own critics (next_q [2, batch, agents]) and entropy term (next_log_prob [batch, agents])."""
    per_agent = (1,) * (next_log_prob.ndim - 1)
    return losses.critic_target(reward.reshape(reward.shape + per_agent), discount.reshape(discount.shape + per_agent),
                                next_q, next_log_prob, alpha, gamma)


def per_agent_critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """SAC's critic loss over every (sample, agent) pair: q [2, batch, agents], target [batch, agents]."""
    return losses.critic_loss(q.reshape(2, -1), target.reshape(-1))


DISCRETE_ENTROPY_SCALE = 0.5
"""The default entropy target per agent with n discrete actions: this fraction of the uniform policy's log(n)."""


class MASACAlgorithm(SACAlgorithm):
    """Multi-agent SAC: a shared actor (own observation + agent id) and attention critics (MAAC-style)."""

    name = "masac"
    config_class = MASACConfig

    def networks(self, config: MASACConfig, spec: Any) -> MASACNetworks:
        return MASACNetworks.from_meta(self.policy_meta(config, spec))

    def networks_from_meta(self, meta: dict[str, Any]) -> MASACNetworks:
        return MASACNetworks.from_meta(meta)

    def entropy_target(self, config: MASACConfig, spec: Any) -> float:
        t = config.train.target_entropy
        if t is not None:
            return t
        if spec.env.discrete:
            return DISCRETE_ENTROPY_SCALE * math.log(spec.env.num_actions)
        return float(-spec.env.agent_action_dim)

    def update_step(self, config: MASACConfig, spec: Any, nets: MASACNetworks):
        """SAC's step with per-agent critic objectives on joined actions; the categorical form's own step with
        discrete actions (``rlpipe.rl.masac.discrete``)."""
        t = config.train
        optimizer, entropy_target = make_optimizer(config), self.entropy_target(config, spec)
        if spec.env.discrete:
            return discrete.make_update_step(nets, optimizer, t.gamma, t.tau, entropy_target, spec.env.num_agents)
        return make_update_step(dataclasses.replace(nets, critic=JointActionCritic(nets.critic)), optimizer, t.gamma,
                                t.tau, entropy_target, targets=per_agent_critic_target, loss=per_agent_critic_loss)

    def sample_action(self, nets: MASACNetworks, actor_params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Every agent's sampled action (a one-hot one with discrete actions), joined [batch, agents x action]."""
        if not nets.actor.discrete:
            return join_agents(super().sample_action(nets, actor_params, obs, key))
        return join_agents(discrete.sample_one_hot(nets.actor.apply(actor_params, obs), key))

    def evaluation_metrics(self, config: MASACConfig, spec: Any) -> tuple[str, ...]:
        """Every agent's own reward: the evaluation tables get each agent's return (``return_<agent>``)."""
        return tuple(f"reward_{agent}" for agent in spec.env.agents)

    def policy_meta(self, config: MASACConfig, spec: Any) -> dict[str, Any]:
        """SAC's meta and the multi-agent layout: the bundle's policy maps joint observations [batch, agents x obs]
        to joint env actions [batch, agents x action]."""
        env = spec.env
        net = config.network
        return policies.describe(self.name, spec, config, num_agents=env.num_agents, agents=list(env.agents),
                                 agent_obs_dim=env.agent_obs_dim, agent_action_dim=env.agent_action_dim,
                                 critic_form=net.critic_form, num_actions=env.num_actions,
                                 attention={"embed_dim": net.attention.embed_dim, "heads": net.attention.heads})

    def make_policy(self, meta: dict[str, Any]):
        """Every agent's tanh of its mean, joined and scaled to the joint action bounds; with discrete actions every
        agent's most probable action as a one-hot score vector (the joint env's action)."""
        actor = self.networks_from_meta(meta).actor
        if meta.get("num_actions"):
            return lambda params, obs: join_agents(discrete.greedy_one_hot(actor.apply(params, obs)))
        low, high = jnp.asarray(meta["action_low"]), jnp.asarray(meta["action_high"])
        return lambda params, obs: scale_to_bounds(join_agents(deterministic_action(actor.apply(params, obs)[0])),
                                                   low, high)

    def make_agent_policy(self, meta: dict[str, Any]):
        """``act(params, rows [B, agent obs + agents]) -> env actions [B, agent action]``: each row one agent's own
        observation followed by its one-hot id (how the served model takes agents one by one). With discrete
        actions each row's action is its index [B] (what the JaxMARL env takes from that agent)."""
        actor = self.networks_from_meta(meta).actor
        if meta.get("num_actions"):
            return lambda params, rows: jnp.argmax(actor.apply(params, rows, method=actor.agent), axis=-1)
        d = meta["agent_action_dim"]
        low, high = jnp.asarray(meta["action_low"][:d]), jnp.asarray(meta["action_high"][:d])

        def act(params, rows):
            mean, _ = actor.apply(params, rows, method=actor.agent)
            return scale_to_bounds(deterministic_action(mean), low, high)

        return act


MASAC = MASACAlgorithm()
