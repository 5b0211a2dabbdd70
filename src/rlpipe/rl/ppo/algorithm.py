"""PPO as an algorithm plugin: training state, the per-device iteration, and its policy.

One iteration (per device): roll the stochastic policy out for ``num_steps`` in its share of the envs, compute
GAE advantages, then ``update_epochs`` passes of ``num_minibatches`` SGD steps over the rollout, with gradients
averaged over the mesh (``lax.pmean``) before clipping and Adam, so parameters stay identical everywhere. Observation
statistics, when used, are updated after the SGD passes from every device's rollout together.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import serialization, struct

from rlpipe.rl import loop, mesh, normalization, policies
from rlpipe.rl.acting import EnvBatchState, reset_envs, unroll
from rlpipe.rl.algorithm import IterationOutput
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.normalization import RunningStats
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.config import PPOConfig
from rlpipe.rl.ppo.losses import clipped_surrogate, explained_variance, gae, normalize_advantages, value_loss

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


def build_network(config: PPOConfig, spec: EnvSpec) -> nets.ActorCritic:
    return nets.ActorCritic(config.network.hidden_sizes, spec.action_dim, spec.continuous, config.network.activation,
                            config.train.init_log_std)


def total_iterations(config: PPOConfig) -> int:
    t = config.train
    return loop.Schedule.build(t, t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches).total_iters


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


# -------------------------------------------------------------------------------------------------- learning
def make_iteration(config: PPOConfig, spec: EnvSpec, num_devices: int):
    """``iteration(scenarios, training, device, key)`` on one device: rollout, GAE, SGD passes."""
    t = config.train
    net = build_network(config, spec)
    optimizer = make_optimizer(config)
    to_env = to_env_action(spec)
    continuous = spec.continuous
    rollout_size = t.num_envs // num_devices * t.num_steps
    minibatch_size = rollout_size // t.num_minibatches
    value_clip = t.clip_eps if t.clip_value_loss else None

    def observe(training: TrainingState, obs: jax.Array) -> jax.Array:
        return normalization.normalize(training.obs_norm, obs) if t.normalize_observations else obs

    def loss_fn(params, batch):
        actor_out, log_std, value = net.apply(params, batch["obs"])
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
        updates, opt_state = optimizer.update(mesh.pmean(grads, AXIS), training.opt_state,
                                              training.params)
        params = optax.apply_updates(training.params, updates)
        return training.replace(params=params, opt_state=opt_state, grad_steps=training.grad_steps + 1), metrics

    def iteration(scenarios: ScenarioBatch, training: TrainingState, device: DeviceState, key: jax.Array):
        rollout_key, update_key = jax.random.split(key)

        def policy(obs, act_key):
            actor_out, log_std, value = net.apply(training.params, observe(training, obs))
            action = nets.sample(continuous, actor_out, log_std, act_key)
            return action, (nets.log_prob(continuous, actor_out, log_std, action), value)

        envs, rollout, episodes = unroll(spec, scenarios, policy, to_env, device.envs, rollout_key, t.num_steps)
        tr = rollout.transition
        old_log_prob, value = rollout.extras
        _, _, next_value = net.apply(training.params, observe(training, tr.next_obs))
        advantage, target = gae(tr.reward, value, next_value, tr.discount, rollout.done, t.gamma, t.gae_lambda)
        flat = lambda x: x.reshape((rollout_size,) + x.shape[2:])  # noqa: E731
        batch = {"obs": flat(observe(training, tr.obs)), "action": flat(tr.action), "log_prob": flat(old_log_prob),
                 "value": flat(value), "advantage": flat(advantage), "target": flat(target)}

        def epoch(training, epoch_key):
            order = jax.random.permutation(epoch_key, rollout_size)
            minibatches = jax.tree.map(
                lambda x: x[order].reshape((t.num_minibatches, minibatch_size) + x.shape[1:]), batch)
            return jax.lax.scan(sgd_step, training, minibatches)

        training, metrics = jax.lax.scan(epoch, training, jax.random.split(update_key, t.update_epochs))
        if t.normalize_observations:
            training = training.replace(obs_norm=normalization.update(training.obs_norm, tr.obs, AXIS))
        metrics = {name: jnp.mean(value_) for name, value_ in metrics.items()}
        metrics["explained_variance"] = explained_variance(batch["value"], batch["target"])
        metrics["learning_rate"] = current_learning_rate(config, training.grad_steps)
        return IterationOutput(training, DeviceState(envs), metrics, episodes)

    return iteration


# ---------------------------------------------------------------------------------------------------- plugin
class PPOAlgorithm:
    """Proximal Policy Optimization with GAE, clipped objective, optional observation normalization."""

    name = "ppo"
    config_class = PPOConfig
    metric_names = METRICS
    progress_labels = (("value_loss", "value"), ("policy_loss", "policy"))
    inheritable = {"params": ("params", "obs_norm"), "optimizer": ("opt_state",)}

    def steps_per_iteration(self, config: PPOConfig) -> tuple[int, int]:
        t = config.train
        return t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches

    def env_steps_before_training(self, config: PPOConfig) -> int:
        return 0

    def init_training_state(self, config: PPOConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
        """Fresh actor-critic, optimizer state and observation statistics (one compiled call)."""

        def init(key):
            params = build_network(config, spec).init(key, jnp.zeros((1, spec.obs_dim), jnp.float32))
            return TrainingState(params, make_optimizer(config).init(params), RunningStats.init(spec.obs_dim),
                                 jnp.int32(0))

        return jax.jit(init)(key)

    def init_device_state(self, config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: Any) -> DeviceState:
        return DeviceState(reset_envs(spec, scenarios, key, config.train.num_envs // num_devices))

    make_iteration = staticmethod(make_iteration)

    def redistribute_device_state(self, device: dict[str, Any], old_devices: int, new_devices: int) -> dict[str, Any]:
        return device  # environments only: each is independent, the leading axis is simply re-split

    def policy_meta(self, config: PPOConfig, spec: EnvSpec) -> dict[str, Any]:
        return policies.describe(self.name, spec, config.network.hidden_sizes, config.network.activation,
                                 normalize_observations=config.train.normalize_observations,
                                 init_log_std=config.train.init_log_std)

    def policy_params(self, training: Any) -> dict[str, Any]:
        """Network weights and the observation statistics the policy normalizes with."""
        state = serialization.to_state_dict(training)
        return {"network": state["params"], "obs_norm": {k: state["obs_norm"][k] for k in ("mean", "var")}}

    def make_policy(self, meta: dict[str, Any]):
        """The Gaussian mean (clipped to the bounds) or the most likely discrete action."""
        net = nets.ActorCritic(tuple(meta["hidden_sizes"]), meta["action_dim"], meta["continuous"],
                               meta["activation"], meta.get("init_log_std", 0.0))
        continuous = meta["continuous"]

        def act(params, obs):
            if meta.get("normalize_observations"):
                stats = params["obs_norm"]
                obs = normalization.normalize(RunningStats(stats["mean"], stats["var"], jnp.float32(1.0)), obs)
            action = nets.mode(continuous, net.apply(params["network"], obs)[0])
            if continuous:
                return jnp.clip(action, jnp.asarray(meta["action_low"]), jnp.asarray(meta["action_high"]))
            return action

        return act


PPO = PPOAlgorithm()
