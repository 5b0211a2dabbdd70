"""PPO imitation (adversarial, AMP-style) as a subclass of the PPO plugin: PPO's feed-forward iteration whose
reward model is a discriminator on (observation, next observation) pairs (``rlpipe.rl.imitation``), trained after
each iteration's SGD passes against the demonstrations in each device's state. Its config is PPO's with an
``imitation`` section (the ``ppo_imitation`` pipeline's parameters).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlpipe.rl import imitation, mesh
from rlpipe.rl.acting import EnvBatchState, Transition, reset_envs
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.normalization import RunningStats
from rlpipe.rl.ppo.algorithm import METRICS, PPOAlgorithm
from rlpipe.rl.ppo.config import PPOConfig

IMITATION_METRICS = ("style_reward", "task_reward", "discriminator_loss", "discriminator_accuracy_agent",
                     "discriminator_accuracy_demo")


@struct.dataclass
class ImitationTrainingState:
    """PPO's training state and the discriminator's (adversarial imitation)."""

    params: Any
    opt_state: Any
    obs_norm: RunningStats
    grad_steps: jax.Array
    disc_params: Any
    disc_opt_state: Any


@struct.dataclass
class ImitationDeviceState:
    """The envs and this device's share of the demonstration pairs (raw observations)."""

    envs: EnvBatchState
    demo_obs: jax.Array  # [transitions, obs_dim]
    demo_next_obs: jax.Array


class Discrimination:
    """The reward model of PPO imitation on one device: the mixed reward of a rollout and the discriminator's
    update (gradients averaged over the mesh)."""

    def __init__(self, config: PPOConfig, rollout_size: int):
        self.config = config.imitation
        self.net = imitation.Discriminator(tuple(self.config.discriminator.hidden_sizes))
        self.optimizer = imitation.make_optimizer(self.config.discriminator.learning_rate)
        self.num_minibatches = config.train.num_minibatches
        self.rollout_size = rollout_size

    def init(self, key: jax.Array, obs_dim: int) -> tuple[Any, Any]:
        params = self.net.init(key, jnp.zeros((1, 2 * obs_dim), jnp.float32))
        return params, self.optimizer.init(params)

    def reward(self, training: ImitationTrainingState, tr: Transition) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``task_weight`` x the env's reward + ``style_weight`` x the discriminator's style reward."""
        score = self.net.apply(training.disc_params, imitation.pairs(tr.obs, tr.next_obs))
        style = imitation.style_reward(score)
        c = self.config
        return c.task_weight * tr.reward + c.style_weight * style, {"style_reward": jnp.mean(style),
                                                                    "task_reward": jnp.mean(tr.reward)}

    def update(self, training: ImitationTrainingState, device: ImitationDeviceState, tr: Transition,
               key: jax.Array) -> tuple[ImitationTrainingState, dict[str, jax.Array]]:
        """``discriminator.epochs`` passes over the rollout's pairs in ``num_minibatches`` steps, each against as
        many demonstration pairs drawn (with replacement) from this device's share; from a key of its own, folded
        from the iteration's update key ``key``."""
        agent = imitation.pairs(tr.obs, tr.next_obs).reshape(self.rollout_size, -1)
        demos = imitation.pairs(device.demo_obs, device.demo_next_obs)
        size = self.rollout_size // self.num_minibatches
        gp = self.config.discriminator.gradient_penalty

        def step(state, inputs):
            params, opt_state = state
            agent_batch, demo_index = inputs
            grads, metrics = jax.grad(
                lambda p: imitation.discriminator_loss(self.net.apply, p, demos[demo_index], agent_batch, gp),
                has_aux=True)(params)
            updates, opt_state = self.optimizer.update(mesh.pmean(grads, AXIS), opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(state, epoch_key):
            order_key, demo_key = jax.random.split(epoch_key)
            batches = agent[jax.random.permutation(order_key, self.rollout_size)]
            batches = batches.reshape(self.num_minibatches, size, -1)
            demo_index = jax.random.randint(demo_key, (self.num_minibatches, size), 0, demos.shape[0])
            return jax.lax.scan(step, state, (batches, demo_index))

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (training.disc_params, training.disc_opt_state),
            jax.random.split(jax.random.fold_in(key, 1), self.config.discriminator.epochs))
        metrics = {name: jnp.mean(v) for name, v in metrics.items()}
        return training.replace(disc_params=params, disc_opt_state=opt_state), metrics


class ImitationPPOAlgorithm(PPOAlgorithm):
    """PPO learning from a discriminator's style reward (mixed with, or instead of, the task's); the train stage's
    extra input is the demonstration pairs, split over the devices."""

    def metrics_of(self, config: PPOConfig) -> tuple[str, ...]:
        return METRICS + IMITATION_METRICS

    def fresh_training_state(self, config: PPOConfig, spec: EnvSpec, key: jax.Array) -> ImitationTrainingState:
        """PPO's, and the discriminator with its optimizer (from a key of their own)."""
        state = super().fresh_training_state(config, spec, key)
        disc_params, disc_opt_state = Discrimination(config, 1).init(jax.random.fold_in(key, 1), spec.obs_dim)
        return ImitationTrainingState(state.params, state.opt_state, state.obs_norm, state.grad_steps, disc_params,
                                      disc_opt_state)

    def init_device_state(self, config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: dict[str, jax.Array]) -> ImitationDeviceState:
        """Its share of the envs and of the demonstration pairs (``device_data``)."""
        envs = reset_envs(spec, scenarios, key, config.train.num_envs // num_devices)
        return ImitationDeviceState(envs, device_data["obs"], device_data["next_obs"])

    def reward_model(self, config: PPOConfig, rollout_size: int) -> Discrimination:
        return Discrimination(config, rollout_size)


IMITATION_PPO = ImitationPPOAlgorithm()
