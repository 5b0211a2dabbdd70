"""SAC as an algorithm plugin: training state, the per-device iteration, buffer prefill, and its policy.

One iteration (per device): unroll the stochastic policy ``unroll_length`` steps in the device's share of the envs,
insert the transitions into its buffer shard, then ``grad_updates_per_iter`` SGD steps on batches sampled from that
shard, with gradients averaged over the mesh (``lax.pmean``) so parameters stay identical everywhere.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization, struct

from rlpipe.rl import buffer as replay
from rlpipe.rl import mesh, policies
from rlpipe.rl.acting import EnvBatchState, Transition, reset_envs, scale_action, scale_to_bounds, unroll
from rlpipe.rl.algorithm import Algorithm, IterationOutput
from rlpipe.rl.buffer import BufferState
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.sac.config import SACConfig
from rlpipe.rl.sac.losses import actor_loss, critic_loss, critic_target, temperature_loss
from rlpipe.rl.sac.networks import Actor, TwinCritic, deterministic_action, sample_tanh_gaussian

logger = logging.getLogger(__name__)

METRICS = ("critic_loss", "actor_loss", "temperature", "entropy", "q_mean")


# ------------------------------------------------------------------------------------------------------ state
@struct.dataclass
class TrainingState:
    """What every device holds identically: networks, optimizers, temperature, counters."""

    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    grad_steps: jax.Array


@struct.dataclass
class DeviceState:
    """What differs per device: its environments and its replay-buffer shard."""

    envs: EnvBatchState
    buffer: BufferState


@dataclass(frozen=True)
class SACNetworks:
    actor: Actor
    critic: TwinCritic

    @staticmethod
    def build(config: SACConfig, spec: EnvSpec) -> SACNetworks:
        return SACNetworks.from_meta(SAC.policy_meta(config, spec))

    @staticmethod
    def from_meta(meta: dict[str, Any]) -> SACNetworks:
        """The networks a policy bundle's meta describes (the ones training built)."""
        hidden, activation, mask = tuple(meta["hidden_sizes"]), meta["activation"], policies.mask_of(meta)
        init = meta.get("init", "lecun_normal")
        return SACNetworks(Actor(hidden, meta["action_dim"], activation, mask, policies.torso_of(meta, "actor"), init),
                           TwinCritic(hidden, activation, mask, policies.torso_of(meta, "critic"), init))


def make_optimizer(config: SACConfig) -> optax.GradientTransformation:
    return optax.adam(config.train.learning_rate)


def target_entropy(config: SACConfig, spec: EnvSpec) -> float:
    t = config.train.target_entropy
    return float(-spec.action_dim) if t is None else t


def _init_training_state(config: SACConfig, spec: EnvSpec, key: jax.Array, nets: Any = None) -> TrainingState:
    nets = nets or SACNetworks.build(config, spec)
    actor_key, critic_key = jax.random.split(key)
    obs = jnp.zeros((1, spec.obs_dim), jnp.float32)
    action = jnp.zeros((1, spec.action_dim), jnp.float32)
    actor_params = nets.actor.init(actor_key, obs)
    critic_params = nets.critic.init(critic_key, obs, action)
    log_alpha = jnp.log(jnp.float32(config.train.init_temperature))
    opt = make_optimizer(config)
    return TrainingState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt_state=opt.init(actor_params),
        critic_opt_state=opt.init(critic_params),
        alpha_opt_state=opt.init(log_alpha),
        grad_steps=jnp.int32(0),
    )


# -------------------------------------------------------------------------------------------------- learning
def mesh_average(tree: Any, axis_name: str | None) -> Any:
    """Gradients averaged over the mesh axis (``axis_name`` None: as they are, outside a mesh)."""
    return mesh.pmean(tree, axis_name or None)


def make_update_step(nets: SACNetworks, optimizer: optax.GradientTransformation, gamma: float, tau: float,
                     entropy_target: float, axis_name: str | None = AXIS, targets=critic_target, loss=critic_loss):
    """One SGD step on a batch: critics, then actor and temperature against the updated critics, then targets.

    ``targets`` and ``loss`` are the critic objectives (``rlpipe.rl.sac.losses`` by default): a variant whose
    critics give other shapes (per-agent values) binds its own, and ``nets`` may be any object with an ``actor``
    and a ``critic`` that apply as SAC's do."""

    def average(tree):
        return mesh_average(tree, axis_name)

    def update(training: TrainingState, batch: Transition, key: jax.Array):
        actor_key, next_key = jax.random.split(key)
        alpha = jnp.exp(training.log_alpha)

        def critic_objective(critic_params):
            next_mean, next_log_std = nets.actor.apply(training.actor_params, batch.next_obs)
            next_action, next_log_prob = sample_tanh_gaussian(next_mean, next_log_std, next_key)
            next_q = nets.critic.apply(training.target_critic_params, batch.next_obs, next_action)
            target = targets(batch.reward, batch.discount, next_q, next_log_prob, alpha, gamma)
            q = nets.critic.apply(critic_params, batch.obs, batch.action)
            return loss(q, target), q

        (c_loss, q), c_grads = jax.value_and_grad(critic_objective, has_aux=True)(training.critic_params)
        c_updates, critic_opt_state = optimizer.update(average(c_grads), training.critic_opt_state)
        critic_params = optax.apply_updates(training.critic_params, c_updates)

        def actor_objective(actor_params):
            mean, log_std = nets.actor.apply(actor_params, batch.obs)
            action, log_prob = sample_tanh_gaussian(mean, log_std, actor_key)
            return actor_loss(log_prob, nets.critic.apply(critic_params, batch.obs, action), alpha), log_prob

        (a_loss, log_prob), a_grads = jax.value_and_grad(actor_objective, has_aux=True)(training.actor_params)
        a_updates, actor_opt_state = optimizer.update(average(a_grads), training.actor_opt_state)
        actor_params = optax.apply_updates(training.actor_params, a_updates)

        t_grad = jax.grad(temperature_loss)(training.log_alpha, log_prob, entropy_target)
        t_update, alpha_opt_state = optimizer.update(average(t_grad), training.alpha_opt_state)
        log_alpha = optax.apply_updates(training.log_alpha, t_update)

        target_critic_params = optax.incremental_update(critic_params, training.target_critic_params, tau)
        new = TrainingState(actor_params, critic_params, target_critic_params, log_alpha, actor_opt_state,
                            critic_opt_state, alpha_opt_state, training.grad_steps + 1)
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "temperature": alpha,
                   "entropy": -jnp.mean(log_prob), "q_mean": jnp.mean(q)}
        return new, metrics

    return update


# ---------------------------------------------------------------------------------------------------- prefill
def prefill_steps_per_env(config: SACConfig) -> int:
    """Prefill is run in ``num_envs`` envs at once; the requested steps are rounded up to whole env steps."""
    return math.ceil(config.buffer.prefill_steps / config.train.num_envs)


def collect_random(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios, flat in time-major order, as numpy.

    Every process computes the same transitions (a pure function of ``key``); each device's buffer shard takes its
    contiguous slice of them.
    """
    num_envs, steps = config.train.num_envs, prefill_steps_per_env(config)

    def random_policy(obs, act_key):
        return jax.random.uniform(act_key, (obs.shape[0], spec.action_dim), minval=-1.0, maxval=1.0), ()

    @jax.jit
    def run(key, scenarios):
        reset_key, unroll_key = jax.random.split(key)
        envs = reset_envs(spec, scenarios, reset_key, num_envs)
        _, rollout, _ = unroll(spec, scenarios, random_policy, scale_action(spec), envs, unroll_key, steps)
        return replay.flatten_time(rollout.transition)

    from rlpipe.rl.envs.host import reraise_host_failures

    try:
        with reraise_host_failures(spec.host):
            return {name: np.asarray(value) for name, value in run(key, scenarios)._asdict().items()}
    finally:
        spec.close_host_envs()


def no_prefill(spec: EnvSpec) -> dict[str, np.ndarray]:
    """An empty set of prefill transitions (a resumed run takes its buffer from the checkpoint)."""
    empty = replay.init_buffer(0, spec.obs_dim, spec.action_dim).data
    return {name: np.asarray(value) for name, value in empty._asdict().items()}


def stored_transitions(buffer: dict[str, Any], stored_devices: int, capacity: int, num_devices: int
                       ) -> dict[str, np.ndarray]:
    """The transitions of a checkpointed replay buffer (written on ``stored_devices`` devices), oldest first, as
    prefill transitions for a new run: the newest ones that fit ``capacity``, a multiple of ``num_devices`` of
    them (each device's shard takes an equal slice)."""
    whole = replay.redistribute(buffer, stored_devices, 1)
    size = int(whole["size"])
    keep = min(size, capacity)
    keep -= keep % num_devices
    return {name: np.asarray(value)[size - keep:size] for name, value in whole["data"].items()}


# ---------------------------------------------------------------------------------------------------- plugin
class SACAlgorithm(Algorithm):
    """Soft Actor-Critic with twin critics, target networks and an auto-tuned entropy temperature.

    Besides the :class:`~rlpipe.rl.algorithm.Algorithm` hooks, the pieces a variant built on SAC overrides:
    ``networks``/``networks_from_meta``, ``entropy_target``, ``update_step`` and ``sample_action``."""

    name = "sac"
    config_class = SACConfig
    metric_names = METRICS
    curve_panels = (("critic_loss", "actor_loss"), ("temperature",))  # the learning curve's lower panels
    progress_labels = (("critic_loss", "critic"), ("actor_loss", "actor"), ("temperature", "alpha"))
    inheritable = {"params": ("actor_params", "critic_params", "target_critic_params", "log_alpha"),
                   "optimizer": ("actor_opt_state", "critic_opt_state", "alpha_opt_state")}

    def steps_per_iteration(self, config: SACConfig) -> tuple[int, int]:
        t = config.train
        return t.num_envs * t.unroll_length, t.grad_updates_per_iter

    def env_steps_before_training(self, config: SACConfig) -> int:
        return prefill_steps_per_env(config) * config.train.num_envs

    def initial_device_data(self, config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch,
                            seed: int) -> dict[str, np.ndarray]:
        """The train stage's extra input outside the SAC pipeline (a search's trials): the random-action prefill,
        with the key the pipeline's prefill node uses for ``seed``."""
        from rlpipe.rl.keys import stage_key

        return collect_random(config, spec, scenarios, stage_key(seed, "prefill"))

    def resumed_device_data(self, config: SACConfig, spec: EnvSpec) -> dict[str, np.ndarray]:
        return no_prefill(spec)

    def inherited_device_data(self, config: SACConfig, open_parent: Any, num_devices: int
                              ) -> dict[str, np.ndarray] | None:
        """With ``train.init_from_buffer``: the parent agent's replay-buffer transitions instead of random ones."""
        if not config.train.init_from_buffer:
            return None
        from rlpipe.rl.agents import parent_part

        parent, version = open_parent()
        transitions = stored_transitions(parent_part(parent, "device")["buffer"], int(parent["meta"]["num_devices"]),
                                         config.buffer.capacity, num_devices)
        logger.info("%s.prefill_buffer: %d transitions from the replay buffer of stored agent %s instead of random "
                    "ones", self.name, len(transitions["reward"]), version)
        return transitions

    def networks(self, config: SACConfig, spec: EnvSpec) -> Any:
        """Actor and critics (``.actor``, ``.critic``) of this config."""
        return SACNetworks.build(config, spec)

    def networks_from_meta(self, meta: dict[str, Any]) -> Any:
        return SACNetworks.from_meta(meta)

    def entropy_target(self, config: SACConfig, spec: EnvSpec) -> float:
        return target_entropy(config, spec)

    def update_step(self, config: SACConfig, spec: EnvSpec, nets: Any):
        """One SGD step ``update(training, batch, key) -> (training, metrics)`` (see ``make_update_step``)."""
        t = config.train
        return make_update_step(nets, make_optimizer(config), t.gamma, t.tau, self.entropy_target(config, spec))

    def sample_action(self, nets: Any, actor_params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        """The stochastic policy's learning actions [batch, action_dim] while training."""
        mean, log_std = nets.actor.apply(actor_params, obs)
        return sample_tanh_gaussian(mean, log_std, key)[0]

    def init_training_state(self, config: SACConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
        """Fresh networks (targets = critics), optimizer states and temperature (one compiled call, not op by op)."""
        return jax.jit(lambda k: _init_training_state(config, spec, k, self.networks(config, spec)))(key)

    def init_device_state(self, config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: dict[str, jax.Array]) -> DeviceState:
        """Its share of freshly reset envs, and a buffer shard of ``capacity / devices`` holding its prefill slice."""
        empty = replay.init_buffer(config.buffer.capacity // num_devices, spec.obs_dim, spec.action_dim)
        return DeviceState(reset_envs(spec, scenarios, key, config.train.num_envs // num_devices),
                           replay.insert(empty, Transition(**device_data)))

    def make_iteration(self, config: SACConfig, spec: EnvSpec, num_devices: int):
        t = config.train
        nets = self.networks(config, spec)
        update = self.update_step(config, spec, nets)
        batch_per_device = t.batch_size // num_devices
        to_env = scale_action(spec)

        def iteration(scenarios: ScenarioBatch, training: TrainingState, device: DeviceState, key: jax.Array):
            unroll_key, update_key = jax.random.split(key)

            def policy(obs, act_key):
                return self.sample_action(nets, training.actor_params, obs, act_key), ()

            envs, rollout, episodes = unroll(spec, scenarios, policy, to_env, device.envs, unroll_key,
                                             t.unroll_length)
            buffer = replay.insert(device.buffer, replay.flatten_time(rollout.transition))

            def sgd_step(training, step_key):
                sample_key, loss_key = jax.random.split(step_key)
                return update(training, replay.sample(buffer, sample_key, batch_per_device), loss_key)

            training, metrics = jax.lax.scan(sgd_step, training,
                                             jax.random.split(update_key, t.grad_updates_per_iter))
            return IterationOutput(training, DeviceState(envs, buffer), {k: jnp.mean(metrics[k]) for k in METRICS},
                                   episodes)

        return iteration

    def redistribute_device_state(self, device: dict[str, Any], old_devices: int, new_devices: int) -> dict[str, Any]:
        """Environments re-split as they are (each env is independent); the buffer's transitions are re-dealt so
        every new shard is a valid ring buffer (see ``rlpipe.rl.buffer.redistribute``)."""
        return {**device, "buffer": replay.redistribute(device["buffer"], old_devices, new_devices)}

    def policy_meta(self, config: SACConfig, spec: EnvSpec) -> dict[str, Any]:
        return policies.describe(self.name, spec, config)

    def policy_params(self, training: Any) -> Any:
        return serialization.to_state_dict(training)["actor_params"]

    def make_policy(self, meta: dict[str, Any]):
        """tanh of the Gaussian mean, scaled to the action bounds."""
        actor = self.networks_from_meta(meta).actor
        low, high = jnp.asarray(meta["action_low"]), jnp.asarray(meta["action_high"])

        def act(params, obs):
            return scale_to_bounds(deterministic_action(actor.apply(params, obs)[0]), low, high)

        return act


SAC = SACAlgorithm()
