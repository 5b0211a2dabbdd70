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

from rlpipe.rl import mesh, normalization, policies
from rlpipe.rl.acting import EnvBatchState, reset_envs, reset_where, unroll, unroll_with_memory
from rlpipe.rl.algorithm import IterationOutput
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.normalization import RunningStats
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.config import PPOConfig
from rlpipe.rl.ppo.losses import clipped_surrogate, explained_variance, gae, normalize_advantages, value_loss
from rlpipe.rl.schedule import Schedule

METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
           "learning_rate")
IMITATION_METRICS = ("style_reward", "task_reward", "discriminator_loss", "discriminator_accuracy_agent",
                     "discriminator_accuracy_demo")


@struct.dataclass
class TrainingState:
    """Identical on every device: network, optimizer, observation statistics, counters."""

    params: Any
    opt_state: Any
    obs_norm: RunningStats
    grad_steps: jax.Array


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
class DeviceState:
    envs: EnvBatchState


@struct.dataclass
class ImitationDeviceState:
    """The envs and this device's share of the demonstration pairs (raw observations)."""

    envs: EnvBatchState
    demo_obs: jax.Array  # [transitions, obs_dim]
    demo_next_obs: jax.Array


@struct.dataclass
class RecurrentDeviceState:
    """A recurrent policy's envs and each env's policy state (zeros where an episode starts)."""

    envs: EnvBatchState
    memory: jax.Array  # [envs, state size]


def build_network(config: PPOConfig, spec: EnvSpec) -> nets.ActorCritic | nets.RecurrentActorCritic:
    return network_from_meta(PPO.policy_meta(config, spec))


def network_from_meta(meta: dict[str, Any]) -> nets.ActorCritic | nets.RecurrentActorCritic:
    """The actor-critic a policy bundle's meta describes (the one training built)."""
    common = dict(hidden_sizes=tuple(meta["hidden_sizes"]), action_dim=meta["action_dim"],
                  continuous=meta["continuous"], activation=meta["activation"],
                  init_log_std=meta.get("init_log_std", 0.0), obs_mask=policies.mask_of(meta),
                  actor_torso=policies.torso_of(meta, "actor"), critic_torso=policies.torso_of(meta, "critic"))
    recurrent = meta.get("recurrent")
    if recurrent:
        return nets.RecurrentActorCritic(**common, cell=recurrent["cell"], hidden_size=recurrent["hidden_size"])
    return nets.ActorCritic(**common)


def memory_size(config: PPOConfig) -> int:
    """Width of each env's policy state (0: feed-forward)."""
    r = config.network.recurrent
    return 0 if r is None else nets.state_size(r.cell, r.hidden_size)


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


def make_iteration(config: PPOConfig, spec: EnvSpec, num_devices: int):
    """``iteration(scenarios, training, device, key)`` on one device: rollout, GAE, SGD passes."""
    if config.network.recurrent is not None:
        return make_recurrent_iteration(config, spec, num_devices)
    t = config.train
    net = build_network(config, spec)
    optimizer = make_optimizer(config)
    to_env = to_env_action(spec)
    continuous = spec.continuous
    rollout_size = t.num_envs // num_devices * t.num_steps
    minibatch_size = rollout_size // t.num_minibatches

    def observe(training: TrainingState, obs: jax.Array) -> jax.Array:
        return normalization.normalize(training.obs_norm, obs) if t.normalize_observations else obs

    sgd_step = make_sgd_step(config, continuous, optimizer, lambda params, batch: net.apply(params, batch["obs"]))
    imitation = Imitation(config, rollout_size) if config.imitation is not None else None

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
        reward, extra = tr.reward, {}
        if imitation is not None:  # the discriminator's style reward, mixed with (or instead of) the task's
            reward, extra = imitation.reward(training, tr)
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
        if t.normalize_observations:
            training = training.replace(obs_norm=normalization.update(training.obs_norm, tr.obs, AXIS))
        metrics = {name: jnp.mean(value_) for name, value_ in metrics.items()}
        metrics["explained_variance"] = explained_variance(batch["value"], batch["target"])
        metrics["learning_rate"] = current_learning_rate(config, training.grad_steps)
        if imitation is not None:
            training, disc_metrics = imitation.update(training, device, tr, jax.random.fold_in(update_key, 1))
            metrics.update(extra, **disc_metrics)
            return IterationOutput(training, device.replace(envs=envs), metrics, episodes)
        return IterationOutput(training, DeviceState(envs), metrics, episodes)

    return iteration


class Imitation:
    """The adversarial-imitation parts of a PPO iteration on one device: the mixed reward of a rollout and the
    discriminator's update (gradients averaged over the mesh)."""

    def __init__(self, config: PPOConfig, rollout_size: int):
        from rlpipe.rl import imitation

        self.lib = imitation
        self.config = config.imitation
        self.net = imitation.Discriminator(tuple(self.config.discriminator.hidden_sizes))
        self.optimizer = imitation.make_optimizer(self.config.discriminator.learning_rate)
        self.num_minibatches = config.train.num_minibatches
        self.rollout_size = rollout_size

    def init(self, key: jax.Array, obs_dim: int) -> tuple[Any, Any]:
        params = self.net.init(key, jnp.zeros((1, 2 * obs_dim), jnp.float32))
        return params, self.optimizer.init(params)

    def reward(self, training: ImitationTrainingState, tr) -> tuple[jax.Array, dict[str, jax.Array]]:
        score = self.net.apply(training.disc_params, self.lib.pairs(tr.obs, tr.next_obs))
        style = self.lib.style_reward(score)
        c = self.config
        return c.task_weight * tr.reward + c.style_weight * style, {"style_reward": jnp.mean(style),
                                                                    "task_reward": jnp.mean(tr.reward)}

    def update(self, training: ImitationTrainingState, device: ImitationDeviceState, tr, key: jax.Array):
        """``discriminator.epochs`` passes over the rollout's pairs in ``num_minibatches`` steps, each against as
        many demonstration pairs drawn (with replacement) from this device's share."""
        agent = self.lib.pairs(tr.obs, tr.next_obs).reshape(self.rollout_size, -1)
        demos = self.lib.pairs(device.demo_obs, device.demo_next_obs)
        size = self.rollout_size // self.num_minibatches
        gp = self.config.discriminator.gradient_penalty

        def step(state, inputs):
            params, opt_state = state
            agent_batch, demo_index = inputs
            grads, metrics = jax.grad(
                lambda p: self.lib.discriminator_loss(self.net.apply, p, demos[demo_index], agent_batch, gp),
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
            jax.random.split(key, self.config.discriminator.epochs))
        metrics = {name: jnp.mean(v) for name, v in metrics.items()}
        return training.replace(disc_params=params, disc_opt_state=opt_state), metrics


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


def make_recurrent_iteration(config: PPOConfig, spec: EnvSpec, num_devices: int):
    """The iteration of a recurrent policy: the rollout carries each env's policy state (zeroed where an episode
    ended) and keeps the state it started from; the SGD passes take minibatches of whole env sequences (envs
    shuffled, never time) and replay each sequence from that stored start, resetting where the rollout did."""
    t = config.train
    net = build_network(config, spec)
    optimizer = make_optimizer(config)
    to_env = to_env_action(spec)
    continuous = spec.continuous
    envs_per_device = t.num_envs // num_devices

    def observe(training: TrainingState, obs: jax.Array) -> jax.Array:
        return normalization.normalize(training.obs_norm, obs) if t.normalize_observations else obs

    def replay(params, obs, done, start):
        """The network over sequences [time, envs] from states ``start`` [envs, size]: (actor out, log_std, value)
        per step, the state zeroed after each step where an episode ended, as in the rollout."""

        def step(state, inputs):
            obs_t, done_t = inputs
            actor_out, log_std, value, state = net.apply(params, obs_t, state)
            return reset_where(done_t, state), (actor_out, log_std, value)

        _, (actor_out, log_std, value) = jax.lax.scan(step, start, (obs, done))
        return actor_out, log_std[0], value

    sgd_step = make_sgd_step(config, continuous, optimizer,
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
        if t.normalize_observations:
            training = training.replace(obs_norm=normalization.update(training.obs_norm, tr.obs, AXIS))
        metrics = {name: jnp.mean(value_) for name, value_ in metrics.items()}
        metrics["explained_variance"] = explained_variance(value, target)
        metrics["learning_rate"] = current_learning_rate(config, training.grad_steps)
        return IterationOutput(training, RecurrentDeviceState(envs, memory), metrics, episodes)

    return iteration


# ---------------------------------------------------------------------------------------------------- plugin
class PPOAlgorithm:
    """Proximal Policy Optimization with GAE, clipped objective, optional observation normalization."""

    name = "ppo"
    config_class = PPOConfig
    metric_names = METRICS
    curve_panels = (("value_loss", "policy_loss"), ("approx_kl", "clip_fraction"))
    progress_labels = (("value_loss", "value"), ("policy_loss", "policy"))
    inheritable = {"params": ("params", "obs_norm"), "optimizer": ("opt_state",)}

    def steps_per_iteration(self, config: PPOConfig) -> tuple[int, int]:
        t = config.train
        return t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches

    def env_steps_before_training(self, config: PPOConfig) -> int:
        return 0

    def metrics_of(self, config: PPOConfig) -> tuple[str, ...]:
        return METRICS + (IMITATION_METRICS if config.imitation is not None else ())

    def init_training_state(self, config: PPOConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
        """Fresh actor-critic, optimizer state and observation statistics (one compiled call); with imitation, the
        discriminator and its optimizer too (from a key of their own)."""

        def init(key):
            obs = jnp.zeros((1, spec.obs_dim), jnp.float32)
            net = build_network(config, spec)
            size = memory_size(config)
            params = net.init(key, obs, jnp.zeros((1, size), jnp.float32)) if size else net.init(key, obs)
            state = TrainingState(params, make_optimizer(config).init(params), RunningStats.init(spec.obs_dim),
                                  jnp.int32(0))
            if config.imitation is None:
                return state
            disc_params, disc_opt_state = Imitation(config, 1).init(jax.random.fold_in(key, 1), spec.obs_dim)
            return ImitationTrainingState(state.params, state.opt_state, state.obs_norm, state.grad_steps,
                                          disc_params, disc_opt_state)

        return jax.jit(init)(key)

    def init_device_state(self, config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array,
                          num_devices: int, device_data: Any) -> DeviceState:
        envs = reset_envs(spec, scenarios, key, config.train.num_envs // num_devices)
        if config.imitation is not None:  # device_data: this device's share of the demonstration pairs
            return ImitationDeviceState(envs, device_data["obs"], device_data["next_obs"])
        if config.network.recurrent is None:
            return DeviceState(envs)
        return RecurrentDeviceState(envs, jnp.zeros((envs.obs.shape[0], memory_size(config)), jnp.float32))

    make_iteration = staticmethod(make_iteration)

    def redistribute_device_state(self, device: dict[str, Any], old_devices: int, new_devices: int) -> dict[str, Any]:
        return device  # per env (envs, policy states) or per demonstration pair: the leading axis is simply re-split

    def policy_meta(self, config: PPOConfig, spec: EnvSpec) -> dict[str, Any]:
        extra = {}
        r = config.network.recurrent
        if r is not None:
            extra = {"recurrent": {"cell": r.cell, "hidden_size": r.hidden_size},
                     "policy_state_size": nets.state_size(r.cell, r.hidden_size)}
        return policies.describe(self.name, spec, config, normalize_observations=config.train.normalize_observations,
                                 init_log_std=config.train.init_log_std, **extra)

    def policy_params(self, training: Any) -> dict[str, Any]:
        """Network weights and the observation statistics the policy normalizes with."""
        state = serialization.to_state_dict(training)
        return {"network": state["params"], "obs_norm": {k: state["obs_norm"][k] for k in ("mean", "var")}}

    def make_policy(self, meta: dict[str, Any]):
        """The Gaussian mean (clipped to the bounds) or the most likely discrete action. A recurrent policy's is
        ``act(params, obs, state) -> (action, next state)`` (``meta["policy_state_size"]`` wide, zeros at an
        episode's start)."""
        net = network_from_meta(meta)
        continuous = meta["continuous"]

        def observe(params, obs):
            if meta.get("normalize_observations"):
                stats = params["obs_norm"]
                obs = normalization.normalize(RunningStats(stats["mean"], stats["var"], jnp.float32(1.0)), obs)
            return obs

        def to_env(action):
            if continuous:
                return jnp.clip(action, jnp.asarray(meta["action_low"]), jnp.asarray(meta["action_high"]))
            return action

        if meta.get("recurrent"):
            def act_recurrent(params, obs, state):
                actor_out, _, _, state = net.apply(params["network"], observe(params, obs), state)
                return to_env(nets.mode(continuous, actor_out)), state

            return act_recurrent

        def act(params, obs):
            return to_env(nets.mode(continuous, net.apply(params["network"], observe(params, obs))[0]))

        return act


PPO = PPOAlgorithm()
