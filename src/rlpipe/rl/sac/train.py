"""SAC training: state, update step, the compiled multi-iteration call pmapped over devices, and the host loop.

One iteration (per device): unroll the stochastic policy ``unroll_length`` steps in its share of the envs,
insert the transitions into its buffer shard, then ``grad_updates_per_iter`` SGD steps on batches sampled from
that shard, with gradients averaged over devices (``lax.pmean``) so parameters stay identical everywhere.
Many iterations run inside one compiled call; the host only wakes up at log intervals.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from rlpipe.rl import parallel
from rlpipe.rl.acting import EnvBatchState, EpisodeStats, Transition, evaluate, random_policy, reset_envs, unroll
from rlpipe.rl.buffer import BufferState, flatten_time, init_buffer, insert, sample
from rlpipe.rl.config import SACConfig
from rlpipe.rl.envs import EnvSpec, ScenarioBatch
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
    """What differs per device: its RNG stream, its environments and its replay-buffer shard."""

    key: jax.Array
    envs: EnvBatchState
    buffer: BufferState


@struct.dataclass
class RunState:
    training: TrainingState
    device: DeviceState
    iteration: jax.Array


def stage_key(seed: int, stage: str) -> jax.Array:
    """The RNG key of one pipeline stage: the run seed folded with the stage name (stable across processes)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(stage.encode()) & 0x7FFFFFFF)


@dataclass(frozen=True)
class SACNetworks:
    actor: Actor
    critic: TwinCritic

    @staticmethod
    def build(config: SACConfig, spec: EnvSpec) -> SACNetworks:
        net = config.network
        return SACNetworks(Actor(net.hidden_sizes, spec.action_dim, net.activation),
                           TwinCritic(net.hidden_sizes, net.activation))

    def deterministic_policy(self, actor_params: Any) -> Callable[[jax.Array], jax.Array]:
        return lambda obs: deterministic_action(self.actor.apply(actor_params, obs)[0])


def make_optimizer(config: SACConfig) -> optax.GradientTransformation:
    return optax.adam(config.train.learning_rate)


def target_entropy(config: SACConfig, spec: EnvSpec) -> float:
    t = config.train.target_entropy
    return float(-spec.action_dim) if t is None else t


def init_training_state(config: SACConfig, spec: EnvSpec, key: jax.Array) -> TrainingState:
    """Fresh networks (targets = critics), optimizer states and temperature."""
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
    """The compiled call: ``chunk(run_state, scenarios, num_iters) -> (run_state, metrics)``, pmapped.

    ``num_iters`` is a traced scalar, so every chunk length runs the same compiled program.
    """
    t = config.train
    nets = SACNetworks.build(config, spec)
    update = make_update_step(nets, make_optimizer(config), t.gamma, t.tau, target_entropy(config, spec))
    batch_per_device = t.batch_size // num_devices

    def iteration(scenarios: ScenarioBatch, run: RunState, sums: dict) -> tuple[RunState, dict]:
        key, unroll_key, update_key = jax.random.split(run.device.key, 3)

        def policy(obs, act_key):
            mean, log_std = nets.actor.apply(run.training.actor_params, obs)
            return sample_tanh_gaussian(mean, log_std, act_key)[0]

        envs, transitions, episodes = unroll(spec, scenarios, policy, run.device.envs, unroll_key, t.unroll_length)
        buffer = insert(run.device.buffer, flatten_time(transitions))

        def sgd_step(training, step_key):
            sample_key, loss_key = jax.random.split(step_key)
            return update(training, sample(buffer, sample_key, batch_per_device), loss_key)

        training, metrics = jax.lax.scan(sgd_step, run.training, jax.random.split(update_key, t.grad_updates_per_iter))
        sums = {
            "episodes": sums["episodes"] + episodes,
            **{name: sums[name] + jnp.mean(metrics[name]) for name in METRICS},
        }
        return RunState(training, DeviceState(key, envs, buffer), run.iteration + 1), sums

    def chunk(run: RunState, scenarios: ScenarioBatch, num_iters: jax.Array):
        zero = {"episodes": EpisodeStats.zero(), **{name: jnp.float32(0.0) for name in METRICS}}
        run, sums = jax.lax.fori_loop(0, num_iters, lambda _, c: iteration(scenarios, *c), (run, zero))
        n = jnp.maximum(num_iters, 1).astype(jnp.float32)
        metrics = {name: jax.lax.pmean(sums[name] / n, parallel.AXIS) for name in METRICS}
        metrics["temperature"] = jnp.exp(run.training.log_alpha)
        episodes = jax.lax.psum(sums["episodes"], parallel.AXIS)
        metrics["episode_return"] = episodes.return_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episode_length"] = episodes.length_sum / jnp.maximum(episodes.count, 1.0)
        metrics["episodes"] = episodes.count
        return run, metrics

    return jax.pmap(chunk, axis_name=parallel.AXIS, in_axes=(0, None, None), donate_argnums=(0,))


# ---------------------------------------------------------------------------------------------------- prefill
def prefill_steps_per_env(config: SACConfig) -> int:
    """Prefill is run in ``num_envs`` envs at once; the requested steps are rounded up to whole env steps."""
    return math.ceil(config.buffer.prefill_steps / config.train.num_envs)


def collect_random(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios, flat in time-major order, as numpy."""
    num_envs, steps = config.train.num_envs, prefill_steps_per_env(config)

    @jax.jit
    def run(key, scenarios):
        reset_key, unroll_key = jax.random.split(key)
        envs = reset_envs(spec, scenarios, reset_key, num_envs)
        _, transitions, _ = unroll(spec, scenarios, random_policy(spec), envs, unroll_key, steps)
        return flatten_time(transitions)

    return {name: np.asarray(value) for name, value in run(key, scenarios)._asdict().items()}


# -------------------------------------------------------------------------------------------------- host loop
ProgressFn = Callable[[dict[str, float]], None]
CheckpointFn = Callable[[int, dict[str, Any]], None]


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


def run_to_tree(run: RunState) -> dict[str, Any]:
    """The checkpointable form: the training state once (it is identical on all devices), device state per device."""
    return {"training": parallel.unreplicate(run.training), "device": run.device, "iteration": run.iteration[0]}


def train(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, training: TrainingState,
          prefill: dict[str, np.ndarray], key: jax.Array, eval_scenarios: ScenarioBatch | None = None,
          on_progress: ProgressFn | None = None,
          on_checkpoint: CheckpointFn | None = None) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train to ``total_env_steps``; returns the final state (``run_to_tree`` form) and one history row per chunk.

    With ``eval_scenarios``, the deterministic policy is evaluated on them every ``eval_every_env_steps`` (and at
    the end); those rows carry ``eval_return_mean``/``eval_return_std``, the others NaN.
    """
    t = config.train
    num_devices = parallel.device_count()
    steps_per_iter = t.num_envs * t.unroll_length
    prefilled = len(prefill["reward"])
    total_iters = max(1, math.ceil((t.total_env_steps - prefilled) / steps_per_iter))
    iters_per_chunk = max(1, t.log_every_env_steps // steps_per_iter)

    run = initial_run_state(config, spec, scenarios, training, prefill, key, num_devices)
    chunk = make_train_chunk(config, spec, num_devices)
    started = time.perf_counter()
    compiled = chunk.lower(run, scenarios, jnp.int32(iters_per_chunk)).compile()
    compile_s = time.perf_counter() - started
    logger.info("train step compiled in %.1f s; %d iterations of %d env steps and %d gradient steps on %d device(s)",
                compile_s, total_iters, steps_per_iter, t.grad_updates_per_iter, num_devices)

    evaluator = None
    if eval_scenarios is not None and t.eval_every_env_steps:
        evaluator = make_evaluator(config, spec, int(np.max(eval_scenarios.params.max_steps_in_episode)))

    history: list[dict[str, float]] = []
    done_iters, next_checkpoint, next_eval = 0, t.checkpoint_every_env_steps, t.eval_every_env_steps
    train_seconds = eval_seconds = 0.0
    while done_iters < total_iters:
        n = min(iters_per_chunk, total_iters - done_iters)
        chunk_started = time.perf_counter()
        run, metrics = compiled(run, scenarios, jnp.int32(n))
        metrics = {k: float(v[0]) for k, v in jax.device_get(metrics).items()}
        elapsed = time.perf_counter() - chunk_started
        train_seconds += elapsed
        done_iters += n
        env_steps = prefilled + done_iters * steps_per_iter
        eval_mean = eval_std = float("nan")
        if evaluator and (env_steps >= next_eval or done_iters == total_iters):
            eval_started = time.perf_counter()
            returns, _ = evaluator(parallel.unreplicate(run.training.actor_params), eval_scenarios)
            eval_mean, eval_std = float(returns.mean()), float(returns.std())
            eval_seconds += time.perf_counter() - eval_started
            next_eval = (env_steps // t.eval_every_env_steps + 1) * t.eval_every_env_steps
        row = {
            "env_steps": env_steps,
            "grad_steps": done_iters * t.grad_updates_per_iter,
            **metrics,
            "episode_return": metrics["episode_return"] if metrics["episodes"] else float("nan"),
            "episode_length": metrics["episode_length"] if metrics["episodes"] else float("nan"),
            "eval_return_mean": eval_mean,
            "eval_return_std": eval_std,
            "env_steps_per_s": n * steps_per_iter / elapsed,
            "grad_steps_per_s": n * t.grad_updates_per_iter / elapsed,
            "train_seconds": train_seconds,  # compiled training calls only: no compile, eval or checkpoint time
            "eval_seconds": eval_seconds,
        }
        history.append(row)
        if on_progress:
            on_progress({**row, "total_env_steps": prefilled + total_iters * steps_per_iter, "compile_s": compile_s})
        if on_checkpoint and (env_steps >= next_checkpoint or done_iters == total_iters):
            on_checkpoint(env_steps, run_to_tree(run))
            next_checkpoint = (env_steps // t.checkpoint_every_env_steps + 1) * t.checkpoint_every_env_steps
    return run_to_tree(run), history


def make_evaluator(config: SACConfig, spec: EnvSpec, max_steps: int):
    """``evaluate(actor_params, scenarios) -> (returns, lengths)``: deterministic policy, compiled once."""
    nets = SACNetworks.build(config, spec)

    @jax.jit
    def run(actor_params, scenarios):
        return evaluate(spec, scenarios, nets.deterministic_policy(actor_params), max_steps)

    def evaluate_fn(actor_params, scenarios: ScenarioBatch) -> tuple[np.ndarray, np.ndarray]:
        returns, lengths = run(actor_params, scenarios)
        return np.asarray(returns), np.asarray(lengths)

    return evaluate_fn


def evaluate_policy(config: SACConfig, spec: EnvSpec, scenarios: ScenarioBatch, actor_params: Any,
                    max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (tanh of the mean) return and length of every scenario's episode."""
    return make_evaluator(config, spec, max_steps)(actor_params, scenarios)
