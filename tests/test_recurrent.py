"""Memory and your own networks: hidden-state resets at episode ends, sequence minibatches, recurrent PPO learning a
partially observable task, the stateful served model, observation masks, and networks by name (a user class that
trains, and each bad network config named at load_config)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlpipe.rl import algorithm, mesh, policies, run_state, training
from rlpipe.rl.acting import StatefulPolicy, evaluate, reset_envs, unroll_with_memory
from rlpipe.rl.config import ConfigError
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.keys import stage_key
from rlpipe.rl.ppo.recurrent import sequence_minibatches
from tests.support import setup, train

RNN_PPO = {
    "seed": 4,
    "env": {"id": "CartPole-v1", "observation_mask": "no_velocity"},
    "scenarios": {"num_train": 8, "num_eval": 8},
    "network": {"hidden_sizes": [16], "recurrent": {"cell": "lstm", "hidden_size": 16}},
    "train": {"total_env_steps": 1024, "num_envs": 4, "num_steps": 16, "update_epochs": 2, "num_minibatches": 2,
              "log_every_env_steps": 256, "eval_every_env_steps": 512, "checkpoint_every_env_steps": 512,
              "normalize_observations": True},
    "early_stopping": {"target_return": None},
}


def policy_bundle(plugin, cfg, spec, trained_training):
    params = policies.bundle_params(plugin.policy_params(mesh.host_copy(trained_training)))
    return {"meta": plugin.policy_meta(cfg, spec), "params": params}


# ------------------------------------------------------------------------------------------ hidden-state handling
def test_memory_resets_to_zero_exactly_where_episodes_end_terminated_or_truncated():
    spec = make_env("tests.memory_envs:Countdown")
    # term_at 2..8 against a 5-step limit: some episodes terminate (at 2, 3, 4), the others are truncated at 5
    table, _ = generate_scenarios(spec, {"term_at": (2, 8)}, 16, 1, seed=0)
    scenarios = scenarios_to_batch(table, spec, "train")
    num_envs, steps = 6, 40

    def counting_policy(obs, key, memory):  # memory: steps since this env's episode began, as the policy sees it
        return jnp.zeros(obs.shape[0], jnp.int32), memory[:, 0], memory + 1.0

    envs = reset_envs(spec, scenarios, jax.random.PRNGKey(1), num_envs)
    memory = jnp.zeros((num_envs, 1))
    _, memory, rollout, _ = jax.jit(lambda e, m, k: unroll_with_memory(
        spec, scenarios, counting_policy, lambda a: a, e, m, k, steps))(envs, memory, jax.random.PRNGKey(2))
    seen, obs = np.asarray(rollout.extras), np.asarray(rollout.transition.obs)[..., 0]
    done, discount = np.asarray(rollout.done), np.asarray(rollout.transition.discount)
    assert (done & (discount == 0)).any() and (done & (discount == 1)).any()  # both kinds of episode end occur
    np.testing.assert_array_equal(seen, obs)  # the memory a step acts on is the time since its episode's reset
    after_end = np.roll(done, 1, axis=0)
    after_end[0] = False
    assert (seen[after_end] == 0).all() and (seen[~after_end & (obs > 0)] > 0).all()
    np.testing.assert_array_equal(np.asarray(memory)[:, 0], obs[-1] * (1 - done[-1]) + (1 - done[-1]))


def test_sequence_minibatches_are_whole_envs_in_time_order():
    steps, envs, minibatches = 5, 6, 3
    batch = {"obs": jnp.arange(steps * envs * 2, dtype=jnp.float32).reshape(steps, envs, 2),
             "done": jnp.arange(steps * envs).reshape(steps, envs) % 3 == 0}
    start = jnp.arange(envs * 4, dtype=jnp.float32).reshape(envs, 4)
    order = jnp.asarray([4, 1, 5, 0, 3, 2])
    out = sequence_minibatches(batch, start, order, minibatches)
    assert out["obs"].shape == (minibatches, steps, envs // minibatches, 2)
    assert out["start"].shape == (minibatches, envs // minibatches, 4)
    for m in range(minibatches):
        for j in range(envs // minibatches):
            env = int(order[m * (envs // minibatches) + j])
            np.testing.assert_array_equal(out["obs"][m, :, j], batch["obs"][:, env])  # every step, in order
            np.testing.assert_array_equal(out["done"][m, :, j], batch["done"][:, env])
            np.testing.assert_array_equal(out["start"][m, j], start[env])  # with that env's stored start state


def test_the_update_replays_each_sequence_from_its_stored_start_state():
    """With a vanishing learning rate the policy does not move, so the SGD passes' log-probabilities must equal the
    rollout's: a replay that started from zeros instead of the stored states (the second rollout starts mid-episode)
    or mixed up time would show a KL above float noise. Two devices, observation normalization on."""
    raw = {**RNN_PPO, "train": {**RNN_PPO["train"], "learning_rate": 1e-12, "anneal_lr": False}}
    ppo, cfg, spec, train_batch, _ = setup("ppo", raw)
    state = ppo.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    scenarios = mesh.put_replicated(mesh.host_copy(train_batch))
    run, specs = run_state.initial_state(ppo, cfg, spec, scenarios, state, stage_key(cfg.seed, "train"))
    chunk = training.make_chunk(ppo, cfg, spec, specs)
    run, _ = chunk(run, scenarios, jnp.int32(1))
    assert np.abs(np.asarray(run.device.memory)).sum() > 0  # the next rollout starts from carried, non-zero states
    run, metrics = chunk(run, scenarios, jnp.int32(2))
    assert float(metrics["approx_kl"]) < 1e-7 and float(metrics["clip_fraction"]) == 0.0, metrics
    for leaf in jax.tree.leaves(run.training):  # and the two devices still hold the same parameters
        first, second = (np.asarray(s.data) for s in leaf.addressable_shards)
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.slow
def test_the_served_stateful_model_acts_as_the_in_process_policy_over_a_whole_episode(tmp_path, cell):
    import mlflow

    from rlpipe.serving.mlflow_model import log_policy_model

    raw = {**RNN_PPO, "env": {"id": "Pendulum-v1", "observation_mask": "no_velocity"},
           "network": {**RNN_PPO["network"], "recurrent": {"cell": cell, "hidden_size": 16}}}
    result, cfg = train("ppo", raw, evaluate=False)
    plugin, spec = algorithm.get("ppo"), make_env(cfg.env.id)
    bundle = policy_bundle(plugin, cfg, spec, result.state["training"])
    size = bundle["meta"]["policy_state_size"]
    assert size == (32 if cell == "lstm" else 16) and bundle["meta"]["observation_mask"] == [0, 1]
    policies.write_policy(tmp_path / "policy", bundle)

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        mlflow.set_experiment("recurrent-serving")
        with mlflow.start_run():
            info = log_policy_model(tmp_path / "policy")
        served = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)

    _, eval_table = generate_scenarios(spec, {}, 1, 1, seed=7)
    batch = scenarios_to_batch(eval_table, spec, "eval")
    in_process = policies.jax_policy(bundle)
    assert isinstance(in_process, StatefulPolicy)
    env, params = spec.env, jax.tree.map(lambda x: x[0], batch.params)
    obs, env_state = env.reset_env(batch.reset_keys[0], params)
    step_key = jax.random.fold_in(batch.reset_keys[0], 1)
    state, served_state, total, actions = jnp.zeros((1, size)), np.zeros((1, size), np.float32), 0.0, []
    for t in range(int(params.max_steps_in_episode)):
        action, state = in_process.step(jnp.asarray(obs)[None], state)
        row = served.predict(np.concatenate([np.asarray(obs, np.float32)[None], served_state], axis=1))
        served_action, served_state = row[:, :1], row[:, 1:]  # a row: the action, then the next state
        np.testing.assert_allclose(served_action, np.asarray(action), atol=1e-6, err_msg=f"step {t}")
        np.testing.assert_allclose(served_state, np.asarray(state), atol=1e-5, err_msg=f"step {t}")
        actions.append(float(action[0, 0]))
        obs, env_state, reward, terminated, _ = env.step_env(jax.random.fold_in(step_key, t), env_state, action[0],
                                                             params)
        total += float(reward)
        if terminated or env.is_truncated(env_state, params):
            break
    returns, lengths, _ = evaluate(spec, batch, in_process, int(params.max_steps_in_episode))
    assert int(lengths[0]) == len(actions) == 200
    assert float(returns[0]) == pytest.approx(total, rel=1e-5)  # evaluation carries the state the same way
    assert np.std(actions) > 1e-3  # the actions change along the episode: the state and observations matter


def test_a_masked_policy_ignores_the_hidden_components_also_when_served():
    result, cfg = train("ppo", RNN_PPO, evaluate=False)
    plugin, spec = algorithm.get("ppo"), make_env(cfg.env.id)
    act = policies.make_policy_fn(policy_bundle(plugin, cfg, spec, result.state["training"]))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 4)).astype(np.float32)
    other = obs.copy()
    other[:, [1, 3]] = rng.normal(size=(64, 2)) * 10  # the velocities the mask hides
    a, state_a = act(obs)
    b, state_b = act(other)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state_a, state_b)
    _, state_c = act(obs + np.asarray([0.0, 0.0, 0.3, 0.0], np.float32))  # a component it sees does matter
    assert not np.array_equal(state_c, state_a)


@pytest.mark.slow
def test_recurrent_ppo_solves_cartpole_without_velocities_where_feed_forward_cannot():
    raw = {"seed": 1, "env": {"id": "CartPole-v1", "observation_mask": "no_velocity"},
           "scenarios": {"num_eval": 32},
           "network": {"hidden_sizes": [64], "activation": "relu", "recurrent": {"cell": "lstm", "hidden_size": 64}},
           "train": {"total_env_steps": 200_000, "num_envs": 8, "num_steps": 32, "update_epochs": 20,
                     "num_minibatches": 1, "learning_rate": 0.001, "gamma": 0.98, "gae_lambda": 0.8,
                     "normalize_observations": True, "log_every_env_steps": 16384, "eval_every_env_steps": 16384,
                     "checkpoint_every_env_steps": 200_000},
           "early_stopping": {"target_return": 475.0, "patience": 2}}
    result, _ = train("ppo", raw)
    assert float(np.mean(result.final_evaluation["returns"])) >= 475, result.history[-1]
    assert result.history[-1]["env_steps"] <= 200_000
    feed_forward = {**raw, "network": {"hidden_sizes": [64, 64], "activation": "relu"},
                    "train": {**raw["train"], "total_env_steps": 32_768}, "early_stopping": {"target_return": None}}
    result, _ = train("ppo", feed_forward)
    assert float(np.mean(result.final_evaluation["returns"])) < 100  # the mask hides what a policy needs


# ------------------------------------------------------------------------------------------- networks by name
@pytest.mark.slow
def test_a_user_network_class_trains_and_is_in_the_params():
    raw = {"seed": 2, "scenarios": {"num_eval": 16},
           "network": {"module": "tests.user_networks:GatedMLP", "kwargs": {"width": 32}},
           "train": {"total_env_steps": 40_960, "log_every_env_steps": 8192, "eval_every_env_steps": 8192},
           "early_stopping": {"target_return": None}}
    result, cfg = train("ppo", raw)
    params = mesh.host_copy(result.state["training"].params)["params"]
    assert "torso" in params["actor"] and "torso" in params["critic"]  # the user's module makes the features
    assert params["actor"]["torso"]["Dense_0"]["kernel"].shape == (4, 32)
    first = result.history[0]["episode_return"]
    final = float(np.mean(result.final_evaluation["returns"]))
    assert final >= 200 and final > 3 * first, (first, final)


def test_the_residual_mlp_is_a_network_by_name_for_sac():
    from tests.conftest import TINY_SAC

    raw = {**TINY_SAC, "network": {"module": "rlpipe.rl.networks:ResidualMLP",
                                   "kwargs": {"hidden_size": 16, "num_blocks": 2}},
           "env": {"observation_mask": [0, 1]}}
    result, cfg = train("sac", raw)
    trained = mesh.host_copy(result.state["training"])
    actor = trained.actor_params["params"]["MLP_0"]["torso"]
    assert {"LayerNorm_0", "LayerNorm_1", "LayerNorm_2"} <= set(actor)
    assert actor["Dense_0"]["kernel"].shape == (2, 16)  # the two observation components the mask keeps
    critic = trained.critic_params["params"]["q1"]["torso"]
    assert critic["Dense_0"]["kernel"].shape == (2 + 1, 16)  # kept observation and the action
    assert np.isfinite(result.history[-1]["critic_loss"])


@pytest.mark.parametrize("algo,network,env,key,says", [
    ("ppo", {"module": "tests.no_such_module:Net"}, {}, "ppo.network.module", "cannot import module"),
    ("ppo", {"module": "tests.user_networks:Missing"}, {}, "ppo.network.module", "has no attribute 'Missing'"),
    ("ppo", {"module": "tests.user_networks:NotAModule"}, {}, "ppo.network.module", "not a flax.linen.Module"),
    ("ppo", {"module": "tests.user_networks:GatedMLP", "kwargs": {"depth": 3}}, {}, "ppo.network.kwargs",
     "unexpected keyword argument 'depth'"),
    ("ppo", {"module": "tests.user_networks:Sequence3D"}, {}, "ppo.network.module", "returns (2, 4, 8)"),
    ("sac", {"critic": {"module": "tests.user_networks:NeedsImages"}}, {}, "sac.network.critic.module",
     "fails on an input batch of shape (2, 4)"),
    ("sac", {"module": "GatedMLP"}, {}, "sac.network.module", "expected 'package.module:ClassName'"),
    ("sac", {"kwargs": {"width": 3}}, {}, "sac.network.kwargs", "without network.module"),
    ("sac", {"actor": {"kwargs": {}}}, {}, "sac.network.actor.module", "is required"),
    ("sac", {"recurrent": {"cell": "lstm"}}, {}, "sac.network.recurrent", "unknown key"),
    ("ppo", {"recurrent": {"cell": "rnn"}}, {}, "ppo.network.recurrent.cell", "'rnn' is not one of 'lstm', 'gru'"),
    ("ppo", {"recurrent": {"hidden_size": 0}}, {}, "ppo.network.recurrent.hidden_size", "must be >= 1"),
    ("ppo", {}, {"observation_mask": [0, 7]}, "ppo.env.observation_mask", "index 7 is outside"),
    ("ppo", {}, {"observation_mask": []}, "ppo.env.observation_mask", "non-empty list"),
    ("ppo", {}, {"observation_mask": [1, 1]}, "ppo.env.observation_mask", "distinct"),
    ("ppo", {}, {"observation_mask": "no_speed"}, "ppo.env.observation_mask", "no named mask"),
    ("sac", {}, {"observation_mask": "no_velocity", "id": "MountainCarContinuous-v0"}, None, None),
    ("ppo", {}, {"observation_mask": "no_velocity", "id": "Acrobot-v1"}, None, None),
    ("ppo", {}, {"observation_mask": "no_velocity", "id": "Catch-bsuite"}, "ppo.env.observation_mask",
     "is defined for CartPole-v1"),
])
def test_each_bad_network_or_mask_config_fails_at_load_config_naming_the_key(algo, network, env, key, says):
    raw = {"network": network, "env": env}  # SAC on Pendulum: 3 observation values + 1 action = 4 critic inputs
    if key is None:  # a named variant that exists for this env
        algorithm.load_config(algo, raw, 1)
        return
    with pytest.raises(ConfigError) as caught:
        algorithm.load_config(algo, raw, 1)
    assert caught.value.key == key, str(caught.value)
    assert says in str(caught.value), str(caught.value)


def test_recurrent_minibatches_must_divide_each_devices_envs():
    raw = {**RNN_PPO, "train": {**RNN_PPO["train"], "num_envs": 6, "num_minibatches": 2}}
    with pytest.raises(ConfigError) as caught:
        algorithm.load_config("ppo", raw, 2)  # 3 envs per device
    assert caught.value.key == "ppo.train.num_minibatches" and "whole env sequences" in str(caught.value)
