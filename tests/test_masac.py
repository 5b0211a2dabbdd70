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
from rlpipe.rl.masac.networks import AttentionCritic, SharedActor

pytest.importorskip("jaxmarl")

N, OBS, ACT = 4, 6, 2
TINY_MASAC = {
    "seed": 1,
    "scenarios": {"num_train": 8, "num_eval": 4},
    "network": {"hidden_sizes": [32, 32], "attention": {"embed_dim": 16, "heads": 2}},
    "buffer": {"capacity": 2048, "prefill_steps": 128},
    "train": {"total_env_steps": 512, "num_envs": 8, "batch_size": 32, "log_every_env_steps": 128,
              "eval_every_env_steps": 256, "checkpoint_every_env_steps": 256},
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
    with pytest.raises(ValueError, match="discrete actions"):
        make_env("jaxmarl:MPE_simple_spread_v3", {})
    with pytest.raises(ValueError, match="did you mean MPE_simple_spread_v3"):
        make_env("jaxmarl:MPE_simple_sprad_v3", {"action_type": "Continuous"})


@pytest.mark.parametrize("change,key", [
    ({"env": {"id": "Pendulum-v1"}}, "masac.env.id"),
    ({"network": {"attention": {"embed_dim": 10, "heads": 4}}}, "masac.network.attention.heads"),
    ({"network": {"critic_form": "central"}}, "masac.network.critic_form"),
])
def test_bad_masac_config_names_the_key(change, key):
    with pytest.raises(ConfigError) as error:
        load_config("masac", {**TINY_MASAC, **change}, 2)
    assert error.value.key == key


def test_masac_pipeline_writes_every_catalog_entry(project):
    (project / "conf" / "local" / "parameters_masac.yml").write_text(yaml.safe_dump({"masac": TINY_MASAC}))
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        session.run(pipeline_name="masac")
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
    np.testing.assert_allclose(agent_rows(policy, rows), joint_actions.reshape(6, 5), rtol=1e-5, atol=1e-6)
    assert np.ptp(joint_actions, axis=1).max() > 0
    assert agent["meta"]["algorithm"] == "masac" and agent["meta"]["env_steps"] == 512
