"""Recurrent PPO: PPO with a policy that has memory (``network.recurrent``), as a subclass of the PPO plugin.

The rollout carries each env's policy state (zeroed where an episode ended) and keeps the state it started from;
the SGD passes take minibatches of whole env sequences (envs shuffled, never time) and replay each sequence from
that stored start, resetting where the rollout did. The policy bundle's policy is stateful:
``act(params, obs, state) -> (action, next state)``, every episode starting from zeros.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl.acting import EnvBatchState, reset_envs, reset_where, unroll_with_memory
from rlpipe.rl.algorithm import IterationOutput
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.algorithm import (PPOAlgorithm, TrainingState, finish_update, make_optimizer, make_sgd_step,
                                     network_fields, observer, policy_observer, policy_to_env, to_env_action)
from rlpipe.rl.ppo.config import PPOConfig
from rlpipe.rl.ppo.losses import gae


@struct.dataclass
class RecurrentDeviceState:
    """A recurrent policy's envs and each env's policy state (zeros where an episode starts)."""

    envs: EnvBatchState
    memory: jax.Array  # [envs, state size]


def memory_size(config: PPOConfig) -> int:
    """Width of each env's policy state."""
    r = config.network.recurrent
    return nets.state_size(r.cell, r.hidden_size)


def sequence_minibatches(batch: dict[str, jax.Array], start: jax.Array, order: jax.Array,
                         num_minibatches: int) -> dict[str, jax.Array]:
    """A rollout's minibatches of whole env sequences: ``batch`` leaves [time, envs, ...] and the envs' start
    states ``start`` [envs, size] taken in the env order ``order`` and split into ``num_minibatches`` groups of
    envs -> leaves [minibatches, time, envs of one, ...] (time kept in order) and "start" [minibatches, envs of
    one, size]."""
    def split(x, env_axis):
        x = jnp.take(x, order, axis=env_axis)
        x = x.reshape(x.shape[:env_axis] + (num_minibatches, -1) + x.shape[env_axis + 1:])
        return jnp.moveaxis(x, env_axis, 0)

    return {**jax.tree.map(lambda x: split(x, 1), batch), "start": split(start, 0)}


def make_replay(net: nets.RecurrentActorCritic):
    """``replay(params, obs, done, start)``: the network over sequences [time, envs] from states ``start``
    [envs, size]: (actor out, log_std, value) per step, the state zeroed after each step where an episode ended, as
    in the rollout."""
    def replay(params, obs, done, start):
        def step(state, inputs):
            obs_t, done_t = inputs
            actor_out, log_std, value, state = net.apply(params, obs_t, state)
            return reset_where(done_t, state), (actor_out, log_std, value)

        _, (actor_out, log_std, value) = jax.lax.scan(step, start, (obs, done))
        return actor_out, log_std[0], value

    return replay


def make_recurrent_iteration(config: PPOConfig, spec: EnvSpec, num_devices: int, net: nets.RecurrentActorCritic):
    """``iteration(scenarios, training, device, key)`` of a recurrent policy on one device: rollout carrying the
    policy states, GAE, SGD passes over whole sequences replayed from their start states."""
    t = config.train
    to_env = to_env_action(spec)
    continuous = spec.continuous
    envs_per_device = t.num_envs // num_devices
    observe = observer(config)
    replay = make_replay(net)
    sgd_step = make_sgd_step(config, continuous, make_optimizer(config),
                             lambda params, batch: replay(params, batch["obs"], batch["done"], batch["start"]))

    def iteration(scenarios: ScenarioBatch, training: TrainingState, device: RecurrentDeviceState, key: jax.Array):
        rollout_key, update_key = jax.random.split(key)

        def policy(obs, act_key, memory):
            actor_out, log_std, value, memory = net.apply(training.params, observe(training, obs), memory)
            action = nets.sample(continuous, actor_out, log_std, act_key)
            # the state after this step, before any reset: what the next observation is seen with
            return action, (nets.log_prob(continuous, actor_out, log_std, action), value, memory), memory

        start = device.memory
        envs, memory, rollout, episodes = unroll_with_memory(spec, scenarios, policy, to_env, device.envs, start,
                                                             rollout_key, t.num_steps)
        tr = rollout.transition
        old_log_prob, value, after = rollout.extras
        # each step's true next observation valued with the state it would be seen with (one batched call)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        _, _, next_value, _ = net.apply(training.params, observe(training, flat(tr.next_obs)), flat(after))
        next_value = next_value.reshape(value.shape)
        advantage, target = gae(tr.reward, value, next_value, tr.discount, rollout.done, t.gamma, t.gae_lambda)
        batch = {"obs": observe(training, tr.obs), "action": tr.action, "log_prob": old_log_prob, "value": value,
                 "advantage": advantage, "target": target, "done": rollout.done}

        def epoch(training, epoch_key):
            order = jax.random.permutation(epoch_key, envs_per_device)
            return jax.lax.scan(sgd_step, training, sequence_minibatches(batch, start, order, t.num_minibatches))

        training, metrics = jax.lax.scan(epoch, training, jax.random.split(update_key, t.update_epochs))
        training, metrics = finish_update(config, training, metrics, tr.obs, value, target)
        return IterationOutput(training, RecurrentDeviceState(envs, memory), metrics, episodes)

    return iteration


class RecurrentPPOAlgorithm(PPOAlgorithm):
    """PPO with a recurrent actor-critic: per-env policy states on the device, sequence replay in the update, a
    stateful policy in the bundle."""

    def network_from_meta(self, meta: dict[str, Any]) -> nets.RecurrentActorCritic:
        recurrent = meta["recurrent"]
        return nets.RecurrentActorCritic(**network_fields(meta), cell=recurrent["cell"],
                                         hidden_size=recurrent["hidden_size"])

    def init_params(self, net: Any, spec: EnvSpec, key: jax.Array) -> Any:
        obs = jnp.zeros((1, spec.obs_dim), jnp.float32)
        return net.init(key, obs, jnp.zeros((1, nets.state_size(net.cell, net.hidden_size)), jnp.float32))

    def init_device_state(self, config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: Any) -> RecurrentDeviceState:
        envs = reset_envs(spec, scenarios, key, config.train.num_envs // num_devices)
        return RecurrentDeviceState(envs, jnp.zeros((envs.obs.shape[0], memory_size(config)), jnp.float32))

    def make_iteration(self, config: PPOConfig, spec: EnvSpec, num_devices: int):
        return make_recurrent_iteration(config, spec, num_devices, self.network(config, spec))

    def policy_meta(self, config: PPOConfig, spec: EnvSpec) -> dict[str, Any]:
        """PPO's meta and the recurrent cell; ``policy_state_size`` tells a bundle's user the policy is stateful."""
        r = config.network.recurrent
        return {**super().policy_meta(config, spec), "recurrent": {"cell": r.cell, "hidden_size": r.hidden_size},
                "policy_state_size": nets.state_size(r.cell, r.hidden_size)}

    def make_policy(self, meta: dict[str, Any]):
        """``act(params, obs, state) -> (action, next state)``: PPO's deterministic action with the policy state
        (``meta["policy_state_size"]`` wide, zeros at an episode's start)."""
        net, observe, to_env = self.network_from_meta(meta), policy_observer(meta), policy_to_env(meta)

        def act_recurrent(params, obs, state):
            actor_out, _, _, state = net.apply(params["network"], observe(params, obs), state)
            return to_env(nets.mode(meta["continuous"], actor_out)), state

        return act_recurrent


RECURRENT_PPO = RecurrentPPOAlgorithm()
