"""The SAC objectives as plain functions of arrays (hand-checkable), and their binding to networks.

Conventions: ``q`` holds both critics' values, shape [2, batch]; ``log_prob`` is per sample, shape [batch].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def critic_target(reward: jax.Array, discount: jax.Array, next_q: jax.Array, next_log_prob: jax.Array,
                  alpha: jax.Array, gamma: float) -> jax.Array:
    """y = r + gamma * discount * (min_i Q'_i(s', a') - alpha * log pi(a'|s')), with a' ~ pi(s')."""
    soft_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return reward + gamma * discount * soft_value


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Sum over the two critics of 0.5 * mean squared error to the (fixed) target."""
    return 0.5 * jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=-1))


def actor_loss(log_prob: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """E[alpha * log pi(a|s) - min_i Q_i(s, a)], a ~ pi(s) reparameterized."""
    return jnp.mean(alpha * log_prob - jnp.min(q, axis=0))


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """E[-alpha * (log pi(a|s) + target_entropy)]: raises alpha while the entropy is below target."""
    return jnp.mean(-jnp.exp(log_alpha) * (jax.lax.stop_gradient(log_prob) + target_entropy))
