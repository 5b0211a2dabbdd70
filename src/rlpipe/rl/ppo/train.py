"""PPO training: state, the compiled multi-iteration call pmapped over devices, and the host loop.

One iteration (per device): roll the stochastic policy out for ``num_steps`` in its share of the envs, compute
GAE advantages, then ``update_epochs`` passes of ``num_minibatches`` SGD steps over the rollout, with gradients
averaged over devices (``lax.pmean``) before clipping and Adam, so parameters stay identical everywhere. Observation
statistics, when used, are updated after the SGD passes from every device's rollout together.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlpipe.rl import loop, normalization, parallel, policies
from rlpipe.rl.acting import EnvBatchState, make_evaluator, reset_envs, unroll
from rlpipe.rl.config import PPOConfig
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.envs import EnvSpec, ScenarioBatch, max_episode_steps
from rlpipe.rl.normalization import RunningStats
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.losses import clipped_surrogate, explained_variance, gae, normalize_advantages, value_loss
from rlpipe.rl.keys import stage_key  # noqa: F401  (nodes and tests reach it as ppo.stage_key)

logger = logging.getLogger(__name__)

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
    key: jax.Array
    envs: EnvBatchState


@struct.dataclass
class RunState:
    training: TrainingState
    device: DeviceState
    iteration: jax.Array


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


def init_training_state(config: PPOConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
    """Fresh actor-critic, optimizer state and observation statistics (one compiled call)."""

    def init(key):
        params = build_network(config, spec).init(key, jnp.zeros((1, spec.obs_dim), jnp.float32))
        return TrainingState(params, make_optimizer(config).init(params), RunningStats.init(spec.obs_dim),
                             jnp.int32(0))

    return jax.jit(init)(key)


def to_env_action(spec: EnvSpec):
    """Learning action -> env action: Gaussian samples are clipped to the Box, discrete indices pass through."""
    if spec.continuous:
        low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
        return lambda action: jnp.clip(action, low, high)
    return lambda action: action


def policy_meta(config: PPOConfig, spec: EnvSpec) -> dict[str, Any]:
    """The policy-bundle description of this agent (what ``rlpipe.rl.policies`` needs to rebuild it)."""
    return policies.describe("ppo", spec, config.network.hidden_sizes, config.network.activation,
                             normalize_observations=config.train.normalize_observations,
                             init_log_std=config.train.init_log_std)


def policy_params(training: TrainingState) -> dict[str, Any]:
    """The policy bundle's params: network weights and the observation statistics it normalizes with."""
    return {"network": training.params, "obs_norm": {"mean": training.obs_norm.mean, "var": training.obs_norm.var}}


# -------------------------------------------------------------------------------------------------- learning
def make_train_chunk(config: PPOConfig, spec: EnvSpec, num_devices: int):
    """The compiled call: ``chunk(run_state, scenarios, num_iters) -> (run_state, metrics)``, pmapped."""
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
        updates, opt_state = optimizer.update(jax.lax.pmean(grads, parallel.AXIS), training.opt_state,
                                              training.params)
        params = optax.apply_updates(training.params, updates)
        return training.replace(params=params, opt_state=opt_state, grad_steps=training.grad_steps + 1), metrics

    def iteration(scenarios: ScenarioBatch, run: RunState):
        key, rollout_key, update_key = jax.random.split(run.device.key, 3)
        training = run.training

        def policy(obs, act_key):
            actor_out, log_std, value = net.apply(training.params, observe(training, obs))
            action = nets.sample(continuous, actor_out, log_std, act_key)
            return action, (nets.log_prob(continuous, actor_out, log_std, action), value)

        envs, rollout, episodes = unroll(spec, scenarios, policy, to_env, run.device.envs, rollout_key, t.num_steps)
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
            training = training.replace(obs_norm=normalization.update(training.obs_norm, tr.obs, parallel.AXIS))
        metrics = {name: jnp.mean(value_) for name, value_ in metrics.items()}
        metrics["explained_variance"] = explained_variance(batch["value"], batch["target"])
        metrics["learning_rate"] = current_learning_rate(config, training.grad_steps)
        return RunState(training, DeviceState(key, envs), run.iteration + 1), metrics, episodes

    return parallel.pmapped_chunk(iteration, METRICS)


# -------------------------------------------------------------------------------------------------- host loop
def initial_run_state(config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, training: TrainingState,
                      key: jax.Array, num_devices: int) -> RunState:
    envs_per_device = config.train.num_envs // num_devices

    def per_device(dev_key):
        env_key, run_key = jax.random.split(dev_key)
        return DeviceState(run_key, reset_envs(spec, scenarios, env_key, envs_per_device))

    device = jax.jit(jax.vmap(per_device))(jax.random.split(key, num_devices))
    return RunState(parallel.replicate(training, num_devices), device, jnp.zeros((num_devices,), jnp.int32))


def train(config: PPOConfig, spec: EnvSpec, scenarios: ScenarioBatch, training: TrainingState, key: jax.Array,
          eval_scenarios: ScenarioBatch | None = None, on_progress: loop.ProgressFn | None = None,
          on_checkpoint: loop.CheckpointFn | None = None,
          resume: tuple[Any, loop.Resume] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train until the budget is spent or early stopping fires; returns the final state and the history.
    ``resume`` is a checkpointed state tree and its loop progress, as for SAC."""
    t, e = config.train, config.early_stopping
    num_devices = parallel.device_count()
    schedule = loop.Schedule.build(t, t.num_envs * t.num_steps, t.update_epochs * t.num_minibatches)
    run = initial_run_state(config, spec, scenarios, training, key, num_devices)
    if resume is not None:
        run = parallel.restore_run(run, resume[0])
    evaluate, precompile = None, None
    if eval_scenarios is not None:
        meta = policy_meta(config, spec)
        evaluator = make_evaluator(spec, lambda p: policies.jax_policy({"meta": meta, "params": p}),
                                   max_episode_steps(eval_scenarios))
        # host copies: one sharding for the ahead-of-time compile and every later call
        params_of = lambda run: jax.device_get(policy_params(parallel.unreplicate(run.training)))  # noqa: E731
        evaluate = lambda run: evaluator(params_of(run), eval_scenarios)[0]  # noqa: E731
        precompile = lambda: evaluator.precompile(params_of(run), eval_scenarios)  # noqa: E731
    chunk, compile_s = parallel.compile_chunk(make_train_chunk(config, spec, num_devices), run, scenarios,
                                              schedule.iters_per_chunk, alongside=precompile)
    logger.info("train step compiled in %.1f s; up to %d iterations of %d env steps and %d gradient steps on %d "
                "device(s)", compile_s, schedule.total_iters, schedule.env_steps_per_iter,
                schedule.grad_steps_per_iter, num_devices)
    stopper = EarlyStopping(e.target_return, e.monitor, e.window, e.patience)
    run, history = loop.run(schedule, run, chunk, evaluate=evaluate, checkpoint_tree=parallel.checkpoint_tree,
                            on_progress=on_progress, on_checkpoint=on_checkpoint, stopper=stopper,
                            resume=resume[1] if resume else None)
    if stopper.stopped_at is not None:
        logger.info("early stop at %d env steps: windowed %s return %.1f >= target %.1f for %d checks",
                    stopper.stopped_at, e.monitor, stopper.values[-1], e.target_return, e.patience)
    return parallel.checkpoint_tree(run), history
