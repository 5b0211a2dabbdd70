"""Issue 16: multi-agent SAC on JaxMARL. The attention critic is blind to the order of the other agents but not to
their actions; the independent critic sees only its own agent; the shared actor tells agents apart by their ids;
the joint env adapter; the masac pipeline writes every catalog entry (a SIGKILL-and-resume case is in
test_resilience)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from rlpipe.rl.algorithm import load_config
from rlpipe.rl.config import ConfigError
from rlpipe.rl.envs import make_env
from rlpipe.rl.masac import discrete
from rlpipe.rl.masac.networks import AttentionCritic, SharedActor

pytest.importorskip("jaxmarl")

N, OBS, ACT = 4, 6, 2
# the shapes of KILL_MASAC (tests/test_resilience.py), a shorter run: the two share their compiled programs
TINY_MASAC = {
    "seed": 1,
    "scenarios": {"num_train": 8, "num_eval": 4},
    "network": {"hidden_sizes": [32, 32], "attention": {"embed_dim": 16, "heads": 2}},
    "buffer": {"capacity": 4096, "prefill_steps": 256},
    "train": {"total_env_steps": 512, "num_envs": 8, "batch_size": 32, "grad_updates_per_iter": 2,
              "log_every_env_steps": 256, "eval_every_env_steps": 256, "checkpoint_every_env_steps": 256},
}


def joint(x):  # [batch, agents, d] -> [batch, agents x d]
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def inputs():
    key_o, key_a = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(key_o, (5, N, OBS)), jax.random.uniform(key_a, (5, N, ACT), minval=-1, maxval=1)


def test_attention_critic_ignores_the_order_of_the_other_agents_but_not_their_actions(inputs):
    obs, act = inputs
    critic = AttentionCritic((32,), N, embed_dim=16, heads=2)
    params = critic.init(jax.random.PRNGKey(1), joint(obs), joint(act))
    q = critic.apply(params, joint(obs), joint(act))  # [batch, agents]
    assert q.shape == (5, N)
    i = 0
    order = np.array([0, 3, 1, 2])  # agent 0 stays first; the others come in another order
    q_perm = critic.apply(params, joint(obs[:, order]), joint(act[:, order]))
    np.testing.assert_allclose(q_perm[:, i], q[:, i], rtol=1e-5, atol=1e-6)
    other_actions = act.at[:, 2].set(-act[:, 2])  # agent 2 acts otherwise
    q_other = critic.apply(params, joint(obs), joint(other_actions))
    assert np.all(np.abs(np.asarray(q_other[:, i] - q[:, i])) > 1e-6)


def test_independent_critic_sees_only_its_own_agent(inputs):
    obs, act = inputs
    critic = AttentionCritic((32,), N, embed_dim=16, heads=2, attention=False)
    params = critic.init(jax.random.PRNGKey(1), joint(obs), joint(act))
    q = critic.apply(params, joint(obs), joint(act))
    changed = critic.apply(params, joint(obs.at[:, 1:].set(0.0)), joint(act.at[:, 1:].set(0.5)))
    np.testing.assert_array_equal(changed[:, 0], q[:, 0])
    assert np.all(np.abs(np.asarray(changed[:, 1:] - q[:, 1:])) > 1e-6)


def test_shared_actor_acts_on_its_own_observation_and_id(inputs):
    obs, _ = inputs
    actor = SharedActor((32,), ACT, N)
    same = jnp.broadcast_to(obs[:, :1], obs.shape)  # every agent sees the same observation
    params = actor.init(jax.random.PRNGKey(2), joint(same))
    mean, log_std = actor.apply(params, joint(same))
    assert mean.shape == (5, N, ACT) and log_std.shape == (5, N, ACT)
    for j in range(1, N):  # only the id differs: the actions differ
        assert np.all(np.abs(np.asarray(mean[:, 0] - mean[:, j])) > 1e-6)
    # one set of weights: agent j's output depends on its own observation only
    changed = actor.apply(params, joint(same.at[:, 2].set(1.0)))[0]
    np.testing.assert_array_equal(np.delete(np.asarray(changed), 2, axis=1), np.delete(np.asarray(mean), 2, axis=1))


def test_joint_env_adapter_and_its_metrics():
    spec = make_env("jaxmarl:MPE_simple_spread_v3", {"action_type": "Continuous"})
    env = spec.env
    assert (env.num_agents, env.agent_obs_dim, env.agent_action_dim) == (3, 18, 5)
    assert (spec.obs_dim, spec.action_dim, spec.continuous) == (54, 15, True)
    assert {"occupied_landmarks", "collisions", "reward_agent_0"} <= set(spec.info_keys)
    obs, state = env.reset_env(jax.random.PRNGKey(0), spec.default_params)
    _, state, reward, terminated, info = env.step_env(jax.random.PRNGKey(1), state, jnp.full(15, 0.5),
                                                      spec.default_params)
    team = sum(float(info[f"reward_agent_{i}"]) for i in range(3))
    assert float(reward) == pytest.approx(team, rel=1e-6) and not bool(terminated)
    with pytest.raises(ValueError, match="did you mean MPE_simple_spread_v3"):
        make_env("jaxmarl:MPE_simple_sprad_v3", {"action_type": "Continuous"})


def test_discrete_joint_env_takes_each_agents_highest_score():
    spec = make_env("jaxmarl:MPE_simple_spread_v3", {})  # MPE's default: 5 discrete actions per agent
    env = spec.env
    assert (env.discrete, env.num_actions, env.agent_action_dim, spec.action_dim) == (True, 5, 5, 15)
    np.testing.assert_array_equal(spec.action_low, -np.ones(15))
    np.testing.assert_array_equal(spec.action_high, np.ones(15))
    obs, state = env.reset_env(jax.random.PRNGKey(0), spec.default_params)
    scores = jax.random.uniform(jax.random.PRNGKey(3), (15,), minval=-1, maxval=1)
    ours = env.step_env(jax.random.PRNGKey(1), state, scores, spec.default_params)
    chosen = np.argmax(np.asarray(scores).reshape(3, 5), axis=1)
    theirs = env.inner.step_env(jax.random.PRNGKey(1), state.inner,
                                {a: jnp.int32(chosen[i]) for i, a in enumerate(env.agents)})
    np.testing.assert_array_equal(ours[0], env._joint_obs(theirs[0]))
    assert float(ours[2]) == pytest.approx(sum(float(theirs[2][a]) for a in env.agents), rel=1e-6)


def test_discrete_critic_has_a_value_per_own_action_given_the_others(inputs):
    obs, _ = inputs
    n_actions = 5
    picks = jax.random.randint(jax.random.PRNGKey(4), (5, N), 0, n_actions)
    act = jax.nn.one_hot(picks, n_actions)
    critic = AttentionCritic((32,), N, embed_dim=16, heads=2, num_actions=n_actions)
    params = critic.init(jax.random.PRNGKey(1), joint(obs), joint(act))
    q = critic.apply(params, joint(obs), joint(act))
    assert q.shape == (5, N, n_actions)
    own_changed = critic.apply(params, joint(obs), joint(act.at[:, 0].set(jax.nn.one_hot((picks[:, 0] + 1) % 5, 5))))
    np.testing.assert_array_equal(own_changed[:, 0], q[:, 0])  # agent 0's own action is the output's index, not input
    assert np.all(np.abs(np.asarray(own_changed[:, 1:] - q[:, 1:])).max(axis=-1) > 1e-6)  # the others see it
    order = np.array([0, 2, 3, 1])
    np.testing.assert_allclose(critic.apply(params, joint(obs[:, order]), joint(act[:, order]))[:, 0], q[:, 0],
                               rtol=1e-5, atol=1e-6)


def test_discrete_objectives_by_hand():
    # one sample, one agent, two actions: pi = (0.25, 0.75), critics (1, 3) and (2, 0) -> min (1, 0)
    log_probs = jnp.log(jnp.array([[[0.25, 0.75]]]))
    q = jnp.array([[[[1.0, 3.0]]], [[[2.0, 0.0]]]])  # [2, batch, agents, n]
    alpha, gamma = 0.5, 0.9
    value = 0.25 * (1 - alpha * np.log(0.25)) + 0.75 * (0 - alpha * np.log(0.75))
    np.testing.assert_allclose(discrete.soft_value(q, log_probs, alpha), [[value]], rtol=1e-6)
    target = discrete.critic_target(jnp.array([2.0]), jnp.array([1.0]), q, log_probs, alpha, gamma)
    np.testing.assert_allclose(target, [[2 + gamma * value]], rtol=1e-6)
    np.testing.assert_allclose(discrete.critic_target(jnp.array([2.0]), jnp.array([0.0]), q, log_probs, alpha, gamma),
                               [[2.0]])
    loss = 0.25 * (alpha * np.log(0.25) - 1) + 0.75 * (alpha * np.log(0.75) - 0)
    np.testing.assert_allclose(discrete.actor_loss(log_probs, q, alpha), loss, rtol=1e-6)
    np.testing.assert_allclose(discrete.entropy(log_probs), [[-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))]],
                               rtol=1e-6)
    np.testing.assert_array_equal(discrete.taken(q, jnp.array([[[0.0, 1.0]]])), [[[3.0]], [[0.0]]])
    scores = jnp.array([[0.1, -0.5, 0.9, 0.0, 0.2, 0.3]])  # 2 agents x 3 actions
    np.testing.assert_array_equal(discrete.taken_actions(scores, 2), [[[0, 0, 1], [0, 0, 1]]])


def test_discrete_shared_actor_and_the_served_indices(inputs):
    obs, _ = inputs
    actor = SharedActor((32,), 5, N, discrete=True)
    params = actor.init(jax.random.PRNGKey(2), joint(obs))
    logits = actor.apply(params, joint(obs))
    assert logits.shape == (5, N, 5)
    rows = jnp.concatenate([obs.reshape(5 * N, OBS), jnp.tile(jnp.eye(N), (5, 1))], axis=1)
    from rlpipe.rl.masac.algorithm import MASAC

    meta = {"hidden_sizes": [32], "activation": "relu", "num_agents": N, "agent_action_dim": 5, "num_actions": 5,
            "critic_form": "attention", "attention": {"embed_dim": 16, "heads": 2}}
    np.testing.assert_array_equal(MASAC.make_agent_policy(meta)(params, rows),
                                  np.argmax(np.asarray(logits).reshape(5 * N, 5), axis=1))
    joint_action = MASAC.make_policy(meta)(params, joint(obs)).reshape(5, N, 5)
    np.testing.assert_array_equal(joint_action, jax.nn.one_hot(jnp.argmax(logits, -1), 5))


def test_only_masac_takes_discrete_multi_agent_envs():
    with pytest.raises(ConfigError) as error:
        load_config("sac", {"env": {"id": "jaxmarl:MPE_simple_spread_v3", "kwargs": {}}}, 1)
    assert error.value.key == "sac.env.id" and "masac" in str(error.value)


@pytest.mark.parametrize("change,key", [
    ({"env": {"id": "Pendulum-v1"}}, "masac.env.id"),
    ({"network": {"attention": {"embed_dim": 10, "heads": 4}}}, "masac.network.attention.heads"),
    ({"network": {"critic_form": "central"}}, "masac.network.critic_form"),
])
def test_bad_masac_config_names_the_key(change, key):
    with pytest.raises(ConfigError) as error:
        load_config("masac", {**TINY_MASAC, **change}, 2)
    assert error.value.key == key


@pytest.mark.parametrize("actions", ["Continuous", "Discrete"])
@pytest.mark.slow
def test_masac_pipeline_writes_every_catalog_entry(project, actions):
    params = {**TINY_MASAC, "env": {"id": "jaxmarl:MPE_simple_spread_v3", "kwargs": {"action_type": actions},
                                    "metrics": ["occupied_landmarks", "collisions"]}}
    (project / "conf" / "local" / "parameters_masac.yml").write_text(yaml.safe_dump({"masac": params}))
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        session.run(pipeline_names=["masac"])
    written = {p.parent.name if p.parent.name != "masac" else p.name
               for p in project.glob("data/*/masac/*")}
    assert written >= {"scenarios_train.parquet", "scenarios_eval.parquet", "prefill_transitions.npz", "agent",
                       "policy", "seed_policies", "training_history.parquet", "eval_episodes.parquet",
                       "eval_seeds.parquet", "eval_summary.json", "scenario_weights.parquet", "learning_curve.png",
                       "eval_returns.png", "policy_animation.gif", "training_videos"}, written
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        episodes = catalog.load("masac.eval_episodes")
        summary = catalog.load("masac.eval_summary")
        policy = catalog.load("masac.policy")
        agent = catalog.load("masac.agent")
    assert {"env.occupied_landmarks", "env.collisions"} <= set(episodes.columns)
    assert {"return_agent_0", "return_agent_1", "return_agent_2"} <= set(episodes.columns)
    np.testing.assert_allclose(episodes[["return_agent_0", "return_agent_1", "return_agent_2"]].sum(axis=1),
                               episodes["return"], rtol=1e-4)
    assert summary["num_episodes"] == 4 and "return_agent_0" in summary
    assert policy["meta"]["num_agents"] == 3 and policy["meta"]["critic_form"] == "attention"
    # the served form: one agent's observation and one-hot id per row gives that agent's part of the joint action
    from rlpipe.rl.policies import agent_rows, make_policy_fn

    obs = np.random.default_rng(0).normal(size=(2, 3, 18)).astype(np.float32)
    joint_actions = make_policy_fn(policy)(obs.reshape(2, 54)).reshape(2, 3, 5)
    rows = np.concatenate([obs.reshape(6, 18), np.tile(np.eye(3, dtype=np.float32), (2, 1))], axis=1)
    if actions == "Discrete":  # the joint env's action: one-hot per agent; served per agent: the action's index
        assert policy["meta"]["num_actions"] == 5
        np.testing.assert_array_equal(joint_actions.sum(axis=-1), np.ones((2, 3)))
        np.testing.assert_array_equal(agent_rows(policy, rows), joint_actions.reshape(6, 5).argmax(axis=1))
    else:
        np.testing.assert_allclose(agent_rows(policy, rows), joint_actions.reshape(6, 5), rtol=1e-5, atol=1e-6)
        assert np.ptp(joint_actions, axis=1).max() > 0
    assert agent["meta"]["algorithm"] == "masac" and agent["meta"]["env_steps"] == 512
