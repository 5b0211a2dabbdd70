"""Adversarial imitation (AMP-style): a discriminator on (observation, next observation) pairs, and the style reward.

The discriminator ``D`` is trained with the least-squares objective of AMP (Peng et al. 2021): demonstration pairs
towards +1, the agent's towards -1, plus a gradient penalty on the demonstration pairs,

    L = mean((D(demo) - 1)^2) + mean((D(agent) + 1)^2) + gradient_penalty / 2 * mean(|grad_x D(demo)|^2)

and the agent is rewarded for looking like the demonstrations: ``style = max(0, 1 - 0.25 (D - 1)^2)``, mixed with
the task reward as ``task_weight * task + style_weight * style``. Inputs are the raw env observations (what the
demonstrations hold), concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class Discriminator(nn.Module):
    """An MLP (ReLU) from a concatenated (observation, next observation) pair to one unbounded score."""

    hidden_sizes: Sequence[int]

    @nn.compact
    def __call__(self, pair: jax.Array) -> jax.Array:
        x = pair
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


def pairs(obs: jax.Array, next_obs: jax.Array) -> jax.Array:
    return jnp.concatenate([obs, next_obs], axis=-1)


def style_reward(score: jax.Array) -> jax.Array:
    """AMP's bounded style reward of a discriminator score: 1 at D = 1 (a demonstration), 0 at D <= -1."""
    return jnp.maximum(0.0, 1.0 - 0.25 * jnp.square(score - 1.0))


def discriminator_loss(apply, params: Any, demo: jax.Array, agent: jax.Array,
                       gradient_penalty: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The least-squares loss with the gradient penalty (see the module doc) and its diagnostics: the loss, the
    accuracy on agent pairs (D < 0) and on demonstration pairs (D > 0)."""
    demo_score = apply(params, demo)
    agent_score = apply(params, agent)
    grads = jax.vmap(jax.grad(lambda x: apply(params, x[None])[0]))(demo)
    penalty = jnp.mean(jnp.sum(jnp.square(grads), axis=-1))
    loss = jnp.mean(jnp.square(demo_score - 1.0)) + jnp.mean(jnp.square(agent_score + 1.0)) \
        + 0.5 * gradient_penalty * penalty
    return loss, {"discriminator_loss": loss,
                  "discriminator_accuracy_agent": jnp.mean((agent_score < 0).astype(jnp.float32)),
                  "discriminator_accuracy_demo": jnp.mean((demo_score > 0).astype(jnp.float32))}


def make_optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


# ---------------------------------------------------------------------------------------- demonstration tables
COLUMNS = ("scenario_id", "step", "observation", "next_observation", "action", "reward", "terminated")


def transitions(table: Any, source: str) -> dict[str, np.ndarray]:
    """A demonstrations table's (observation, next observation) pairs as float32 arrays [transitions, obs_dim];
    ``source`` (the file) is named in errors."""
    from rlpipe.rl.errors import ConfigError

    missing = [c for c in ("observation", "next_observation") if c not in table.columns]
    if missing:
        raise ConfigError(source, f"missing column(s) {', '.join(missing)}: not a demonstrations table")
    if len(table) == 0:
        raise ConfigError(source, "has no transitions")
    obs = np.stack([np.asarray(v, np.float32) for v in table["observation"]])
    next_obs = np.stack([np.asarray(v, np.float32) for v in table["next_observation"]])
    if not (np.isfinite(obs).all() and np.isfinite(next_obs).all()):
        raise ConfigError(source, "holds observations that are not finite")
    return {"obs": obs, "next_obs": next_obs}
