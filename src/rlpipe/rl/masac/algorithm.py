"""Multi-agent SAC as an algorithm plugin: SAC's machinery (replay buffer of joint transitions per device shard,
prefill, the fused iteration, checkpoints, evaluation) with a shared actor and per-agent twin critics that attend
over the other agents (MAAC). One temperature for the shared actor, against an entropy target per agent; each
agent's critic target uses that agent's own entropy term, the team reward and the joint next action. Discrete-action
envs get the categorical form (``rlpipe.rl.masac.discrete``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from rlpipe.rl import policies
from rlpipe.rl.masac import discrete
from rlpipe.rl.masac.config import MASACConfig
from rlpipe.rl.masac.networks import SharedActor, TwinCritic
from rlpipe.rl.sac.algorithm import SACAlgorithm


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
        if not spec.env.discrete:
            return super().update_step(config, spec, nets)
        from rlpipe.rl.sac.algorithm import make_optimizer

        t = config.train
        return discrete.make_update_step(nets, make_optimizer(config), t.gamma, t.tau,
                                         self.entropy_target(config, spec), spec.env.num_agents)

    def sample_action(self, nets: MASACNetworks, actor_params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        if not nets.actor.discrete:
            return super().sample_action(nets, actor_params, obs, key)
        return discrete.sample_one_hot(nets.actor.apply(actor_params, obs), key).reshape(obs.shape[0], -1)

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
        """SAC's (tanh of the mean), or with discrete actions every agent's most probable action as a one-hot
        score vector (the joint env's action)."""
        if not meta.get("num_actions"):
            return super().make_policy(meta)
        actor = self.networks_from_meta(meta).actor

        def act(params, obs):
            return discrete.greedy_one_hot(actor.apply(params, obs)).reshape(obs.shape[0], -1)

        return act

    def make_agent_policy(self, meta: dict[str, Any]):
        """``act(params, rows [B, agent obs + agents]) -> env actions [B, agent action]``: each row one agent's own
        observation followed by its one-hot id (how the served model takes agents one by one). With discrete
        actions each row's action is its index [B] (what the JaxMARL env takes from that agent)."""
        from rlpipe.rl.acting import scale_to_bounds
        from rlpipe.rl.sac.networks import deterministic_action

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
