"""rejax helpers shared by rejax_sac.py and rejax_ppo.py.

rejax trains in ONE jitted function: ``algo.train(rng)`` is a ``lax.scan`` over
"train ``eval_freq`` env steps, then call ``algo.eval_callback``". We replace the
eval callback by our own, which

  1. calls an ordered ``io_callback`` (``pre``) whose operand depends on the trained
     parameters, so it fires only after the training chunk has finished; the host
     records the wall-clock time;
  2. evaluates the DETERMINISTIC policy on ``n_episodes`` episodes of the gymnax env,
     episode i reset with key ``PRNGKey(10_000 + i)`` (same start states every eval).
     The policy parameters are offset by the (zero) value returned by ``pre``, so the
     evaluation cannot start before ``pre`` has fired;
  3. calls an ordered ``io_callback`` (``post``) with the episode returns; the host
     records the wall-clock time and the mean return.

The training clock at eval k is ``pre_k - run_start - sum_{j<k}(post_j - pre_j)``:
wall time of the compiled run minus all evaluation time. Compilation is done
ahead of time (``jax.jit(train).lower(rng).compile()``) and reported separately.
The whole step budget is always run (no early exit inside jit); the threshold
crossing is read from the recorded evaluations.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from _common import log

EVAL_SEED_BASE = 10_000

REJAX_VERSION_PACKAGES = ("rejax", "jax", "jaxlib", "flax", "optax", "gymnax", "distrax",
                          "chex", "tfp-nightly", "numpy")


def make_deterministic_eval(env, env_params, policy_fn, n_episodes: int):
    """Return ``eval(params) -> returns[n_episodes]`` (jittable).

    ``policy_fn(params, obs[1, ...]) -> action`` must be deterministic.
    """
    max_steps = int(env_params.max_steps_in_episode)
    reset_keys = jnp.stack([jax.random.PRNGKey(EVAL_SEED_BASE + i) for i in range(n_episodes)])

    def one_episode(params, key):
        obs, state = env.reset(key, env_params)

        def cond(carry):
            _, _, done, _, t = carry
            return jnp.logical_and(t < max_steps, jnp.logical_not(done))

        def body(carry):
            obs, state, _, ret, t = carry
            action = policy_fn(params, obs[None])
            # Pendulum / CartPole dynamics are deterministic; the key is unused there.
            step_key = jax.random.fold_in(key, t)
            obs, state, reward, done, _ = env.step(step_key, state, action, env_params)
            return obs, state, done, ret + jnp.squeeze(reward), t + 1

        init = (obs, state, jnp.array(False), jnp.array(0.0, jnp.float32), jnp.array(0))
        _, _, _, ret, _ = jax.lax.while_loop(cond, body, init)
        return ret

    def evaluate(params):
        return jax.vmap(one_episode, in_axes=(None, 0))(params, reset_keys)

    return evaluate


class EvalRecorder:
    """Host side of the timing callbacks."""

    def __init__(self, threshold: float, process_t0: float):
        self.threshold = threshold
        self.process_t0 = process_t0
        self.run_start: float | None = None
        self.eval_seconds_total = 0.0
        self._pre: float | None = None
        self.evals: list[list[float]] = []
        self.hit: dict | None = None

    def pre(self, step, marker):
        self._pre = time.perf_counter()
        return np.zeros((), np.float32)

    def post(self, step, returns):
        t_post = time.perf_counter()
        t_pre = self._pre
        train_s = t_pre - self.run_start - self.eval_seconds_total
        steps = int(np.asarray(step))
        mean = float(np.mean(np.asarray(returns)))
        self.evals.append([steps, mean, train_s])
        if self.hit is None and mean >= self.threshold:
            self.hit = {"env_steps": steps, "train_seconds": train_s,
                        "process_seconds": t_post - self.process_t0}
        log(f"eval @ {steps} env steps: mean return {mean:.1f} "
            f"(train {train_s:.2f}s, eval {t_post - t_pre:.3f}s)")
        # host-side bookkeeping and logging count as evaluation time, too
        self.eval_seconds_total += time.perf_counter() - t_pre


def install_eval_callback(algo, recorder: EvalRecorder, policy_fn, n_episodes: int):
    """Return ``algo`` with its eval callback replaced by the timed deterministic eval."""
    evaluate = make_deterministic_eval(algo.env, algo.env_params, policy_fn, n_episodes)

    def eval_callback(algo_, ts, rng):
        leaves = jax.tree.leaves(ts.actor_ts.params)
        marker = jnp.sum(leaves[-1]).astype(jnp.float32)
        zero = io_callback(recorder.pre, jax.ShapeDtypeStruct((), jnp.float32),
                           ts.global_step, marker, ordered=True)
        params = jax.tree.map(lambda p: p + zero.astype(p.dtype), ts.actor_ts.params)
        returns = evaluate(params)
        io_callback(recorder.post, None, ts.global_step, returns, ordered=True)
        return jnp.mean(returns)

    return algo.replace(eval_callback=eval_callback, skip_initial_evaluation=True)


def run_timed(algo, seed: int, recorder: EvalRecorder) -> dict:
    rng = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    lowered = jax.jit(algo.train).lower(rng)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    log(f"trace+lower {t1 - t0:.1f}s, compile {t2 - t1:.1f}s")

    recorder.run_start = time.perf_counter()
    ts, eval_means = compiled(rng)
    jax.block_until_ready((ts, eval_means))
    run_end = time.perf_counter()

    steps_total = int(ts.global_step)
    run_s = run_end - recorder.run_start
    train_s = run_s - recorder.eval_seconds_total
    hit = recorder.hit
    return {
        "evals": recorder.evals,
        "reached": hit is not None,
        "env_steps_to_threshold": hit["env_steps"] if hit else None,
        "train_seconds_to_threshold": hit["train_seconds"] if hit else None,
        "process_seconds_to_threshold": hit["process_seconds"] if hit else None,
        "compile_seconds": t2 - t0,
        "trace_lower_seconds": t1 - t0,
        "xla_compile_seconds": t2 - t1,
        "env_steps_total": steps_total,
        "run_seconds_total": run_s,
        "train_seconds_total": train_s,
        "eval_seconds_total": recorder.eval_seconds_total,
        "env_steps_per_s": steps_total / train_s if train_s > 0 else None,
        "jax_backend": jax.default_backend(),
    }
