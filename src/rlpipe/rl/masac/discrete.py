"""Multi-agent SAC with discrete actions: a categorical shared actor and critics with a Q-value per own action.

Each agent i has a categorical policy pi_i(.|o_i, id_i) and twin critics Q_k(s, a_-i)[i, :] giving a value for each
of its own actions, given the others' actions (MAAC's discrete form). The objectives take the expectation over the
agent's own actions exactly instead of sampling it (discrete SAC, Christodoulou 2019):

- soft value of the next state for agent i: V_i(s') = sum_a pi_i(a|s') (min_k Q'_k(s', a'_-i)[i, a] - alpha log
  pi_i(a|s')), with the others' next actions a'_-i sampled from their policies;
- critic target y_i = r + gamma * discount * V_i(s'); critic loss on Q_k(s, a_-i)[i, a_i] for the stored actions;
- actor loss: sum_a pi_i(a|s) (alpha log pi_i(a|s) - min_k Q_k(s, a_-i)[i, a]), the others' actions sampled from
  their current policies; the temperature against the exact entropy H_i = -sum_a pi_i log pi_i.

Stored actions are score vectors per agent (see ``rlpipe.rl.envs.jaxmarl``); the action an agent took is the index
of its highest score, so the random prefill's uniform scores and the actor's one-hot samples read alike.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from rlpipe.rl.masac.networks import join_agents, split_agents
from rlpipe.rl.mesh import AXIS
from rlpipe.rl.sac.algorithm import TrainingState, mesh_average
from rlpipe.rl.sac.losses import critic_loss, temperature_loss


# ----------------------------------------------------------------------------------- objectives on plain arrays
def soft_value(q: jax.Array, log_probs: jax.Array, alpha: jax.Array) -> jax.Array:
    """sum_a pi(a) (min_k Q_k[.., a] - alpha log pi(a)): q [2, .., n], log_probs [.., n] -> [..]."""
    probs = jnp.exp(log_probs)
    return jnp.sum(probs * (jnp.min(q, axis=0) - alpha * log_probs), axis=-1)


def critic_target(reward: jax.Array, discount: jax.Array, next_q: jax.Array, next_log_probs: jax.Array,
                  alpha: jax.Array, gamma: float) -> jax.Array:
    """y = r + gamma * discount * V(s'), per agent: reward and discount [batch], next_q [2, batch, agents, n],
    next_log_probs [batch, agents, n] -> [batch, agents]."""
    return reward[:, None] + gamma * discount[:, None] * soft_value(next_q, next_log_probs, alpha)


def taken(q: jax.Array, one_hot: jax.Array) -> jax.Array:
    """The Q-values of the actions taken: q [2, .., n], one_hot [.., n] -> [2, ..]."""
    return jnp.sum(q * one_hot, axis=-1)


def actor_loss(log_probs: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """E over the batch and agents of sum_a pi(a) (alpha log pi(a) - min_k Q_k[a]); q is held fixed."""
    probs = jnp.exp(log_probs)
    return jnp.mean(jnp.sum(probs * (alpha * log_probs - jax.lax.stop_gradient(jnp.min(q, axis=0))), axis=-1))


def entropy(log_probs: jax.Array) -> jax.Array:
    """-sum_a pi(a) log pi(a): [.., n] -> [..]."""
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


def taken_actions(action: jax.Array, num_agents: int) -> jax.Array:
    """Stored joint score vectors [batch, agents x n] -> the one-hot of each agent's action [batch, agents, n]."""
    scores = split_agents(action, num_agents)
    return jax.nn.one_hot(jnp.argmax(scores, axis=-1), scores.shape[-1], dtype=scores.dtype)


def sample_one_hot(logits: jax.Array, key: jax.Array) -> jax.Array:
    """A categorical sample per agent as one-hot vectors: logits [.., n] -> [.., n]."""
    return jax.nn.one_hot(jax.random.categorical(key, logits), logits.shape[-1], dtype=logits.dtype)


def greedy_one_hot(logits: jax.Array) -> jax.Array:
    """The evaluation action: the most probable one, one-hot."""
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=logits.dtype)


# ------------------------------------------------------------------------------------------------ the update
def make_update_step(nets: Any, optimizer: optax.GradientTransformation, gamma: float, tau: float,
                     entropy_target: float, num_agents: int, axis_name: str | None = AXIS):
    """One SGD step on a batch, in SAC's order (critics, then actor and temperature against the updated critics,
    then the targets), with the discrete objectives above; gradients averaged over the mesh."""

    def average(tree):
        return mesh_average(tree, axis_name)

    def update(training: TrainingState, batch: Any, key: jax.Array):
        actor_key, next_key = jax.random.split(key)
        alpha = jnp.exp(training.log_alpha)
        next_log_probs = jax.nn.log_softmax(nets.actor.apply(training.actor_params, batch.next_obs))
        next_action = sample_one_hot(next_log_probs, next_key)
        next_q = nets.critic.apply(training.target_critic_params, batch.next_obs, join_agents(next_action))
        target = critic_target(batch.reward, batch.discount, next_q, next_log_probs, alpha, gamma)
        one_hot = taken_actions(batch.action, num_agents)

        def critic_objective(critic_params):
            q = taken(nets.critic.apply(critic_params, batch.obs, join_agents(one_hot)), one_hot)  # [2, batch, agents]
            return critic_loss(q.reshape(2, -1), target.reshape(-1)), q

        (c_loss, q), c_grads = jax.value_and_grad(critic_objective, has_aux=True)(training.critic_params)
        c_updates, critic_opt_state = optimizer.update(average(c_grads), training.critic_opt_state)
        critic_params = optax.apply_updates(training.critic_params, c_updates)

        others = sample_one_hot(nets.actor.apply(training.actor_params, batch.obs), actor_key)
        q_all = nets.critic.apply(critic_params, batch.obs, join_agents(others))  # [2, batch, agents, n]

        def actor_objective(actor_params):
            log_probs = jax.nn.log_softmax(nets.actor.apply(actor_params, batch.obs))
            return actor_loss(log_probs, q_all, alpha), log_probs

        (a_loss, log_probs), a_grads = jax.value_and_grad(actor_objective, has_aux=True)(training.actor_params)
        a_updates, actor_opt_state = optimizer.update(average(a_grads), training.actor_opt_state)
        actor_params = optax.apply_updates(training.actor_params, a_updates)

        h = entropy(log_probs)
        t_grad = jax.grad(temperature_loss)(training.log_alpha, -h, entropy_target)
        t_update, alpha_opt_state = optimizer.update(average(t_grad), training.alpha_opt_state)
        log_alpha = optax.apply_updates(training.log_alpha, t_update)

        target_critic_params = optax.incremental_update(critic_params, training.target_critic_params, tau)
        new = TrainingState(actor_params, critic_params, target_critic_params, log_alpha, actor_opt_state,
                            critic_opt_state, alpha_opt_state, training.grad_steps + 1)
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "temperature": alpha, "entropy": jnp.mean(h),
                   "q_mean": jnp.mean(q)}
        return new, metrics

    return update
