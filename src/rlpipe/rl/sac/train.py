"""SAC training: state, update step, the compiled multi-iteration call pmapped over devices, and the host loop.

One iteration (per device): unroll the stochastic policy ``unroll_length`` steps in its share of the envs,
insert the transitions into its buffer shard, then ``grad_updates_per_iter`` SGD steps on batches sampled from
that shard, with gradients averaged over devices (``lax.pmean``) so parameters stay identical everywhere.
Many iterations run inside one compiled call; the host only wakes up at log intervals.
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
from flax import struct

from rlpipe.rl import loop, parallel, policies
from rlpipe.rl.acting import EnvBatchState, Transition, reset_envs, scale_action, unroll
from rlpipe.rl.acting import make_evaluator as make_evaluator_for
from rlpipe.rl.buffer import BufferState, flatten_time, init_buffer, insert, sample
from rlpipe.rl.config import SACConfig
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.envs import EnvSpec, ScenarioBatch, max_episode_steps
from rlpipe.rl.keys import stage_key  # noqa: F401  (nodes and tests reach it as sac.stage_key)
from rlpipe.rl.sac.losses import actor_loss, critic_loss, critic_target, temperature_loss
from rlpipe.rl.sac.networks import Actor, TwinCritic, sample_tanh_gaussian

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
    """What differs per device: its RNG stream, its environments and its replay-buffer shard."""

    key: jax.Array
    envs: EnvBatchState
    buffer: BufferState


@struct.dataclass
class RunState:
    training: TrainingState
    device: DeviceState
    iteration: jax.Array


@dataclass(frozen=True)
class SACNetworks:
    actor: Actor
    critic: TwinCritic

    @staticmethod
    def build(config: SACConfig, spec: EnvSpec) -> SACNetworks:
        net = config.network
        return SACNetworks(Actor(net.hidden_sizes, spec.action_dim, net.activation),
                           TwinCritic(net.hidden_sizes, net.activation))


def make_optimizer(config: SACConfig) -> optax.GradientTransformation:
    return optax.adam(config.train.learning_rate)


def target_entropy(config: SACConfig, spec: EnvSpec) -> float:
    t = config.train.target_entropy
    return float(-spec.action_dim) if t is None else t


def init_training_state(config: SACConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
    """Fresh networks (targets = critics), optimizer states and temperature (one compiled call, not op by op)."""
    return jax.jit(lambda k: _init_training_state(config, spec, k))(key)


def _init_training_state(config: SACConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
    nets = SACNetworks.build(config, spec)
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
def make_update_step(nets: SACNetworks, optimizer: optax.GradientTransformation, gamma: float, tau: float,
                     entropy_target: float, axis_name: str | None = parallel.AXIS):
    """One SGD step on a batch: critics, then actor and temperature against the updated critics, then targets."""

    def average(tree):
        return jax.lax.pmean(tree, axis_name) if axis_name else tree

    def update(training: TrainingState, batch: Transition, key: jax.Array):
        actor_key, next_key = jax.random.split(key)
        alpha = jnp.exp(training.log_alpha)

        def critic_objective(critic_params):
            next_mean, next_log_std = nets.actor.apply(training.actor_params, batch.next_obs)
            next_action, next_log_prob = sample_tanh_gaussian(next_mean, next_log_std, next_key)
            next_q = nets.critic.apply(training.target_critic_params, batch.next_obs, next_action)
            target = critic_target(batch.reward, batch.discount, next_q, next_log_prob, alpha, gamma)
            q = nets.critic.apply(critic_params, batch.obs, batch.action)
            return critic_loss(q, target), q

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


def make_train_chunk(config: SACConfig, spec: EnvSpec, num_devices: int):
    """The compiled call: ``chunk(run_state, scenarios, num_iters) -> (run_state, metrics)``, pmapped."""
    t = config.train
    nets = SACNetworks.build(config, spec)
    update = make_update_step(nets, make_optimizer(config), t.gamma, t.tau, target_entropy(config, spec))
    batch_per_device = t.batch_size // num_devices
    to_env = scale_action(spec)

    def iteration(scenarios: ScenarioBatch, run: RunState):
        key, unroll_key, update_key = jax.random.split(run.device.key, 3)

        def policy(obs, act_key):
            mean, log_std = nets.actor.apply(run.training.actor_params, obs)
            return sample_tanh_gaussian(mean, log_std, act_key)[0], ()

        envs, rollout, episodes = unroll(spec, scenarios, policy, to_env, run.device.envs, unroll_key,
                                         t.unroll_length)
        buffer = insert(run.device.buffer, flatten_time(rollout.transition))

        def sgd_step(training, step_key):
            sample_key, loss_key = jax.random.split(step_key)
            return update(training, sample(buffer, sample_key, batch_per_device), loss_key)

        training, metrics = jax.lax.scan(sgd_step, run.training, jax.random.split(update_key, t.grad_updates_per_iter))
        run = RunState(training, DeviceState(key, envs, buffer), run.iteration + 1)
        return run, {name: jnp.mean(metrics[name]) for name in METRICS}, episodes

    return parallel.pmapped_chunk(iteration, METRICS)


# ---------------------------------------------------------------------------------------------------- prefill
def prefill_steps_per_env(config: SACConfig) -> int:
    """Prefill is run in ``num_envs`` envs at once; the requested steps are rounded up to whole env steps."""
    return math.ceil(config.buffer.prefill_steps / config.train.num_envs)


def collect_random(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios, flat in time-major order, as numpy."""
    num_envs, steps = config.train.num_envs, prefill_steps_per_env(config)

    def random_policy(obs, act_key):
        return jax.random.uniform(act_key, (obs.shape[0], spec.action_dim), minval=-1.0, maxval=1.0), ()

    @jax.jit
    def run(key, scenarios):
        reset_key, unroll_key = jax.random.split(key)
        envs = reset_envs(spec, scenarios, reset_key, num_envs)
        _, rollout, _ = unroll(spec, scenarios, random_policy, scale_action(spec), envs, unroll_key, steps)
        return flatten_time(rollout.transition)

    return {name: np.asarray(value) for name, value in run(key, scenarios)._asdict().items()}


# -------------------------------------------------------------------------------------------------- host loop
def initial_run_state(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, training: TrainingState,
                      prefill: dict[str, np.ndarray], key: jax.Array, num_devices: int) -> RunState:
    """Replicated training state, and per device: a key, freshly reset envs, a buffer shard holding its prefill."""
    t, b = config.train, config.buffer
    capacity, envs_per_device = b.capacity // num_devices, t.num_envs // num_devices
    device_keys = jax.random.split(key, num_devices)
    shards = parallel.shard(Transition(**{k: jnp.asarray(v) for k, v in prefill.items()}), num_devices)

    def per_device(dev_key, shard):
        env_key, run_key = jax.random.split(dev_key)
        buffer = insert(init_buffer(capacity, spec.obs_dim, spec.action_dim), shard)
        return DeviceState(run_key, reset_envs(spec, scenarios, env_key, envs_per_device), buffer)

    device = jax.jit(jax.vmap(per_device))(device_keys, shards)
    return RunState(parallel.replicate(training, num_devices), device, jnp.zeros((num_devices,), jnp.int32))


def train(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, training: TrainingState,
          prefill: dict[str, np.ndarray], key: jax.Array, eval_scenarios: ScenarioBatch | None = None,
          on_progress: loop.ProgressFn | None = None, on_checkpoint: loop.CheckpointFn | None = None,
          stopper: EarlyStopping | None = None,
          resume: tuple[Any, loop.Resume] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train to ``total_env_steps`` (or until ``stopper`` says so); returns the final state
    (``parallel.checkpoint_tree`` form) and one history row per chunk. ``resume`` is a checkpointed state tree
    and its loop progress: training continues from there exactly as it would have without the interruption.

    With ``eval_scenarios``, the deterministic policy is evaluated on them every ``eval_every_env_steps`` (and at
    the end); those rows carry ``eval_return_mean``/``eval_return_std``, the others NaN.
    """
    t = config.train
    num_devices = parallel.device_count()
    schedule = loop.Schedule.build(t, t.num_envs * t.unroll_length, t.grad_updates_per_iter,
                                   env_steps_before=len(prefill["reward"]))
    run = initial_run_state(config, spec, scenarios, training, prefill, key, num_devices)
    if resume is not None:
        run = parallel.restore_run(run, resume[0])
    evaluate, precompile = None, None
    if eval_scenarios is not None:
        evaluator = make_evaluator(config, spec, max_episode_steps(eval_scenarios))
        # host copies: one sharding for the ahead-of-time compile and every later call
        actor_params = lambda run: jax.device_get(parallel.unreplicate(run.training.actor_params))  # noqa: E731
        evaluate = lambda run: evaluator(actor_params(run), eval_scenarios)[0]  # noqa: E731
        precompile = lambda: evaluator.precompile(actor_params(run), eval_scenarios)  # noqa: E731
    chunk, compile_s = parallel.compile_chunk(make_train_chunk(config, spec, num_devices), run, scenarios,
                                              schedule.iters_per_chunk, alongside=precompile)
    logger.info("train step compiled in %.1f s; %d iterations of %d env steps and %d gradient steps on %d device(s)",
                compile_s, schedule.total_iters, schedule.env_steps_per_iter, t.grad_updates_per_iter, num_devices)
    run, history = loop.run(schedule, run, chunk, evaluate=evaluate, checkpoint_tree=parallel.checkpoint_tree,
                            on_progress=on_progress, on_checkpoint=on_checkpoint, stopper=stopper,
                            resume=resume[1] if resume else None)
    return parallel.checkpoint_tree(run), history


def policy_meta(config: SACConfig, spec: EnvSpec) -> dict[str, Any]:
    """The policy-bundle description of this agent (what ``rlpipe.rl.policies`` needs to rebuild it)."""
    return policies.describe("sac", spec, config.network.hidden_sizes, config.network.activation)


def make_evaluator(config: SACConfig, spec: EnvSpec, max_steps: int):
    """``evaluate(actor_params, scenarios) -> (returns, lengths)`` with the deterministic policy (tanh of the mean),
    built by the same function as the exported policy, so training-time and final evaluation share one program."""
    meta = policy_meta(config, spec)
    return make_evaluator_for(spec, lambda actor_params: policies.jax_policy({"meta": meta, "params": actor_params}),
                              max_steps)


def evaluate_policy(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, actor_params: Any,
                    max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (tanh of the mean) return and length of every scenario's episode."""
    return make_evaluator(config, spec, max_steps)(actor_params, scenarios)
