"""PPO objectives as plain functions of arrays (hand-checkable): GAE, clipped surrogate, value loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(reward: jax.Array, value: jax.Array, next_value: jax.Array, discount: jax.Array, done: jax.Array,
        gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimates and value targets over a rollout [time, ...], by a reverse scan.

    ``next_value`` is the value of each step's true next observation (its final observation where the episode
    ended), ``discount`` is 0 where the episode *terminated*, and ``done`` marks any episode end. So a truncated
    step bootstraps from the value of its final observation, a terminated one does not, and no advantage flows
    from one episode into the next.
    """
    delta = reward + gamma * discount * next_value - value
    carry_weight = gamma * lam * (1.0 - done.astype(jnp.float32))

    def back(next_advantage, step):
        d, w = step
        advantage = d + w * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, carry_weight), reverse=True)
    return advantages, advantages + value


def clipped_surrogate(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, clip_eps: float):
    """-E[min(r A, clip(r, 1 - eps, 1 + eps) A)] with r = pi/pi_old; also approximate KL and clip fraction."""
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    loss = -jnp.mean(jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage))
    approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
    clip_fraction = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    return loss, approx_kl, clip_fraction


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float | None) -> jax.Array:
    """0.5 E[(V - target)^2]; with ``clip_eps``, the pessimistic max with the update clipped around ``old_value``."""
    unclipped = (value - target) ** 2
    if clip_eps is None:
        return 0.5 * jnp.mean(unclipped)
    clipped = (old_value + jnp.clip(value - old_value, -clip_eps, clip_eps) - target) ** 2
    return 0.5 * jnp.mean(jnp.maximum(unclipped, clipped))


def normalize_advantages(advantage: jax.Array) -> jax.Array:
    return (advantage - jnp.mean(advantage)) / (jnp.std(advantage) + 1e-8)


def explained_variance(value: jax.Array, target: jax.Array) -> jax.Array:
    """1 - Var[target - V] / Var[target]: 1 is a perfect critic, 0 no better than a constant."""
    return 1.0 - jnp.var(target - value) / jnp.maximum(jnp.var(target), 1e-8)
