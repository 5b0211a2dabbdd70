"""PPO as an algorithm plugin: training state, the per-device iteration, and its policy (feed-forward form).

One iteration (per device): roll the stochastic policy out for ``num_steps`` in its share of the envs, compute
GAE advantages, then ``update_epochs`` passes of ``num_minibatches`` SGD steps over the rollout, with gradients
averaged over the mesh (``lax.pmean``) before clipping and Adam, so parameters stay identical everywhere. Observation
statistics, when used, are updated after the SGD passes from every device's rollout together.

The variants built on this class live in their own modules: the recurrent policy (``rlpipe.rl.ppo.recurrent``) and
adversarial imitation (``rlpipe.rl.ppo.imitation``); ``rlpipe.rl.ppo.plugin`` registers the family as "ppo".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import serialization, struct

from rlpipe.rl import mesh, normalization, policies
from rlpipe.rl.acting import EnvBatchState, Transition, reset_envs, unroll
from rlpipe.rl.algorithm import Algorithm, IterationOutput
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.normalization import RunningStats
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.config import PPOConfig
from rlpipe.rl.ppo.losses import clipped_surrogate, explained_variance, gae, normalize_advantages, value_loss
from rlpipe.rl.schedule import Schedule

METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
           "learning_rate")


@struct.dataclass
class TrainingState:
    """Identical on every device: network, optimizer, observation statistics, counters."""

    params: Any
    opt_state: Any
    obs_norm: RunningStats
    grad_steps: jax.Array


@struct.dataclass
class DeviceState:
    envs: EnvBatchState


def network_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The actor-critic fields every PPO network form takes, from a policy bundle's meta."""
    return dict(hidden_sizes=tuple(meta["hidden_sizes"]), action_dim=meta["action_dim"],
                continuous=meta["continuous"], activation=meta["activation"],
                init_log_std=meta.get("init_log_std", 0.0), obs_mask=policies.mask_of(meta),
                actor_torso=policies.torso_of(meta, "actor"), critic_torso=policies.torso_of(meta, "critic"))


def total_iterations(config: PPOConfig) -> int:
    t = config.train
    return Schedule.build(t, t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches).total_iters


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    t = config.train
    lr: Any = t.learning_rate
    if t.anneal_lr:
        lr = optax.linear_schedule(t.learning_rate, 0.0, total_iterations(config) * t.update_epochs * t.num_minibatches)
    return optax.chain(optax.clip_by_global_norm(t.max_grad_norm), optax.adam(lr, eps=1e-5))


def current_learning_rate(config: PPOConfig, grad_steps: jax.Array) -> jax.Array:
    t = config.train
    if not t.anneal_lr:
        return jnp.float32(t.learning_rate)
    total = total_iterations(config) * t.update_epochs * t.num_minibatches
    return jnp.float32(t.learning_rate) * jnp.maximum(0.0, 1.0 - grad_steps / total)


def to_env_action(spec: EnvSpec):
    """Learning action -> env action: Gaussian samples are clipped to the Box, discrete indices pass through."""
    if spec.continuous:
        low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
        return lambda action: jnp.clip(action, low, high)
    return lambda action: action


def observer(config: PPOConfig) -> Callable[[Any, jax.Array], jax.Array]:
    """``observe(training, obs)``: observations as the network sees them (normalized by the running statistics
    when ``train.normalize_observations``)."""
    def observe(training: TrainingState, obs: jax.Array) -> jax.Array:
        return normalization.normalize(training.obs_norm, obs) if config.train.normalize_observations else obs

    return observe


# -------------------------------------------------------------------------------------------------- learning
def make_sgd_step(config: PPOConfig, continuous: bool, optimizer: optax.GradientTransformation, evaluate):
    """One SGD step of both PPO forms on a minibatch: ``evaluate(params, batch) -> (actor out, log_std, value)``
    for the minibatch's steps (a flat batch, or whole sequences replayed); the clipped objective, gradients
    averaged over the mesh, clipping and Adam."""
    t = config.train
    value_clip = t.clip_eps if t.clip_value_loss else None

    def loss_fn(params, batch):
        actor_out, log_std, value = evaluate(params, batch)
        new_log_prob = nets.log_prob(continuous, actor_out, log_std, batch["action"])
        advantage = normalize_advantages(batch["advantage"]) if t.normalize_advantages else batch["advantage"]
        pg_loss, approx_kl, clip_fraction = clipped_surrogate(new_log_prob, batch["log_prob"], advantage, t.clip_eps)
        v_loss = value_loss(value, batch["value"], batch["target"], value_clip)
        ent = jnp.mean(nets.entropy(continuous, actor_out, log_std))
        total = pg_loss + t.vf_coef * v_loss - t.ent_coef * ent
        return total, {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": ent, "approx_kl": approx_kl,
                       "clip_fraction": clip_fraction}

    def sgd_step(training: TrainingState, batch):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(training.params, batch)
        updates, opt_state = optimizer.update(mesh.pmean(grads, AXIS), training.opt_state, training.params)
        params = optax.apply_updates(training.params, updates)
        return training.replace(params=params, opt_state=opt_state, grad_steps=training.grad_steps + 1), metrics

    return sgd_step


def finish_update(config: PPOConfig, training: Any, metrics: dict[str, jax.Array], obs: jax.Array,
                  value: jax.Array, target: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
    """After the SGD passes of either form: observation statistics updated from every device's rollout ``obs``, the
    SGD metrics averaged, and the value fit and learning rate added."""
    if config.train.normalize_observations:
        training = training.replace(obs_norm=normalization.update(training.obs_norm, obs, AXIS))
    metrics = {name: jnp.mean(value_) for name, value_ in metrics.items()}
    metrics["explained_variance"] = explained_variance(value, target)
    metrics["learning_rate"] = current_learning_rate(config, training.grad_steps)
    return training, metrics


class RewardModel(Protocol):
    """What a feed-forward iteration learns from: the reward of a rollout, and the model's own update after the
    SGD passes (both on one device, inside the compiled program)."""

    def reward(self, training: Any, transitions: Transition) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(the reward PPO learns from [time, envs], metrics of it)."""

    def update(self, training: Any, device: Any, transitions: Transition, key: jax.Array
               ) -> tuple[Any, dict[str, jax.Array]]:
        """(the training state with the model's part updated, metrics); ``key`` is the iteration's update key."""


class TaskReward:
    """The env's own reward, with nothing to learn: PPO's reward model."""

    def reward(self, training: Any, transitions: Transition) -> tuple[jax.Array, dict[str, jax.Array]]:
        return transitions.reward, {}

    def update(self, training: Any, device: Any, transitions: Transition, key: jax.Array
               ) -> tuple[Any, dict[str, jax.Array]]:
        return training, {}


def make_iteration(config: PPOConfig, spec: EnvSpec, num_devices: int, net: nets.ActorCritic,
                   reward_model: RewardModel):
    """``iteration(scenarios, training, device, key)`` on one device: rollout, GAE on ``reward_model``'s reward,
    SGD passes, then the reward model's own update."""
    t = config.train
    optimizer = make_optimizer(config)
    to_env = to_env_action(spec)
    continuous = spec.continuous
    rollout_size = t.num_envs // num_devices * t.num_steps
    minibatch_size = rollout_size // t.num_minibatches
    observe = observer(config)
    sgd_step = make_sgd_step(config, continuous, optimizer, lambda params, batch: net.apply(params, batch["obs"]))

    def iteration(scenarios: ScenarioBatch, training: TrainingState, device: Any, key: jax.Array):
        rollout_key, update_key = jax.random.split(key)

        def policy(obs, act_key):
            actor_out, log_std, value = net.apply(training.params, observe(training, obs))
            action = nets.sample(continuous, actor_out, log_std, act_key)
            return action, (nets.log_prob(continuous, actor_out, log_std, action), value)

        envs, rollout, episodes = unroll(spec, scenarios, policy, to_env, device.envs, rollout_key, t.num_steps)
        tr = rollout.transition
        old_log_prob, value = rollout.extras
        _, _, next_value = net.apply(training.params, observe(training, tr.next_obs))
        reward, reward_metrics = reward_model.reward(training, tr)
        advantage, target = gae(reward, value, next_value, tr.discount, rollout.done, t.gamma, t.gae_lambda)
        flat = lambda x: x.reshape((rollout_size,) + x.shape[2:])  # noqa: E731
        batch = {"obs": flat(observe(training, tr.obs)), "action": flat(tr.action), "log_prob": flat(old_log_prob),
                 "value": flat(value), "advantage": flat(advantage), "target": flat(target)}

        def epoch(training, epoch_key):
            order = jax.random.permutation(epoch_key, rollout_size)
            minibatches = jax.tree.map(
                lambda x: x[order].reshape((t.num_minibatches, minibatch_size) + x.shape[1:]), batch)
            return jax.lax.scan(sgd_step, training, minibatches)

        training, metrics = jax.lax.scan(epoch, training, jax.random.split(update_key, t.update_epochs))
        training, metrics = finish_update(config, training, metrics, tr.obs, batch["value"], batch["target"])
        training, model_metrics = reward_model.update(training, device, tr, update_key)
        metrics.update(reward_metrics, **model_metrics)
        return IterationOutput(training, device.replace(envs=envs), metrics, episodes)

    return iteration


# ---------------------------------------------------------------------------------------------------- plugin
class PPOAlgorithm(Algorithm):
    """Proximal Policy Optimization with GAE, clipped objective, optional observation normalization.

    Besides the :class:`~rlpipe.rl.algorithm.Algorithm` hooks, the pieces a variant built on PPO overrides:
    ``network_from_meta``, ``init_params``, ``fresh_training_state`` and ``reward_model``."""

    name = "ppo"
    config_class = PPOConfig
    metric_names = METRICS
    curve_panels = (("value_loss", "policy_loss"), ("approx_kl", "clip_fraction"))
    progress_labels = (("value_loss", "value"), ("policy_loss", "policy"))
    inheritable = {"params": ("params", "obs_norm"), "optimizer": ("opt_state",)}

    def steps_per_iteration(self, config: PPOConfig) -> tuple[int, int]:
        t = config.train
        return t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches

    def network_from_meta(self, meta: dict[str, Any]) -> Any:
        """The actor-critic a policy bundle's meta describes (the one training built)."""
        return nets.ActorCritic(**network_fields(meta))

    def network(self, config: PPOConfig, spec: EnvSpec) -> Any:
        return self.network_from_meta(self.policy_meta(config, spec))

    def init_params(self, net: Any, spec: EnvSpec, key: jax.Array) -> Any:
        return net.init(key, jnp.zeros((1, spec.obs_dim), jnp.float32))

    def fresh_training_state(self, config: PPOConfig, spec: EnvSpec, key: jax.Array) -> Any:
        """Fresh actor-critic, optimizer state and observation statistics (traceable)."""
        params = self.init_params(self.network(config, spec), spec, key)
        return TrainingState(params, make_optimizer(config).init(params), RunningStats.init(spec.obs_dim),
                             jnp.int32(0))

    def init_training_state(self, config: PPOConfig, spec: EnvSpec, key: jax.Array) -> Any:
        """:meth:`fresh_training_state` in one compiled call (not op by op)."""
        return jax.jit(lambda k: self.fresh_training_state(config, spec, k))(key)

    def init_device_state(self, config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: Any) -> Any:
        return DeviceState(reset_envs(spec, scenarios, key, config.train.num_envs // num_devices))

    def reward_model(self, config: PPOConfig, rollout_size: int) -> RewardModel:
        """What the iteration learns from, for a device's rollout of ``rollout_size`` steps: the task's reward."""
        return TaskReward()

    def make_iteration(self, config: PPOConfig, spec: EnvSpec, num_devices: int):
        rollout_size = config.train.num_envs // num_devices * config.train.num_steps
        return make_iteration(config, spec, num_devices, self.network(config, spec),
                              self.reward_model(config, rollout_size))

    def policy_meta(self, config: PPOConfig, spec: EnvSpec) -> dict[str, Any]:
        return policies.describe(self.name, spec, config, normalize_observations=config.train.normalize_observations,
                                 init_log_std=config.train.init_log_std)

    def policy_params(self, training: Any) -> dict[str, Any]:
        """Network weights and the observation statistics the policy normalizes with."""
        state = serialization.to_state_dict(training)
        return {"network": state["params"], "obs_norm": {k: state["obs_norm"][k] for k in ("mean", "var")}}

    def make_policy(self, meta: dict[str, Any]):
        """The Gaussian mean (clipped to the bounds) or the most likely discrete action."""
        net, observe, to_env = self.network_from_meta(meta), policy_observer(meta), policy_to_env(meta)

        def act(params, obs):
            return to_env(nets.mode(meta["continuous"], net.apply(params["network"], observe(params, obs))[0]))

        return act


def policy_observer(meta: dict[str, Any]) -> Callable[[Any, jax.Array], jax.Array]:
    """``observe(params, obs)``: a bundle's policy input, normalized with its stored statistics where it was."""
    def observe(params, obs):
        if meta.get("normalize_observations"):
            stats = params["obs_norm"]
            obs = normalization.normalize(RunningStats(stats["mean"], stats["var"], jnp.float32(1.0)), obs)
        return obs

    return observe


def policy_to_env(meta: dict[str, Any]) -> Callable[[jax.Array], jax.Array]:
    """A bundle's action as the env takes it: clipped to the bounds where continuous."""
    def to_env(action):
        if meta["continuous"]:
            return jnp.clip(action, jnp.asarray(meta["action_low"]), jnp.asarray(meta["action_high"]))
        return action

    return to_env


FEED_FORWARD_PPO = PPOAlgorithm()
