"""The evaluation and recording pipelines of a stored PPO agent (``ppo_eval``, ``ppo_record_demonstrations``) run
through Kedro and write their outputs, and the fresh scenarios they draw never repeat a training scenario."""

import copy

import jax
import numpy as np
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from rlpipe.pipelines.demonstrations import demonstration_scenarios
from rlpipe.pipelines.evaluation import eval_scenarios
from rlpipe.rl.acting import evaluate
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.envs import env_spec, max_episode_steps, scenarios_to_batch
from rlpipe.rl.envs import scenarios as scenario_tables
from rlpipe.rl.keys import scenario_seed
from rlpipe.rl.policies import jax_policy
from tests.test_ppo import TINY_PPO


def test_fresh_eval_and_demonstration_scenarios_share_no_reset_seed_with_the_agents_scenarios(monkeypatch):
    # so few reset seeds to draw from that a fresh draw is bound to hit the agent's own ones
    monkeypatch.setattr(scenario_tables, "_SEED_LIMIT", 60)
    config = load_config("ppo", {**TINY_PPO, "scenarios": {"num_train": 16, "num_eval": 8}}, 2)
    spec = env_spec(config.env)
    train, held_out = scenario_tables.generate_scenarios(spec, {}, 16, 8, scenario_seed(config))
    unfiltered = scenario_tables.generate_scenarios(spec, {}, 16, 30, scenario_seed(config) + 1)[1]
    assert set(unfiltered["reset_seed"]) & set(train["reset_seed"])  # without the rule they would collide

    fresh = eval_scenarios(config, {"scenarios": "fresh", "num_scenarios": 12})
    assert len(fresh) == 12 and fresh["scenario_id"].tolist() == list(range(12))
    assert not set(fresh["reset_seed"]) & set(train["reset_seed"])
    assert fresh["reset_seed"].is_unique
    stored = eval_scenarios(config, {"scenarios": "stored"})
    assert stored["reset_seed"].tolist() == held_out["reset_seed"].tolist()  # the agent's own, exactly

    demos = demonstration_scenarios(config, {"num_episodes": 10})
    assert len(demos) == 10 and demos["scenario_id"].tolist() == list(range(10))
    assert not set(demos["reset_seed"]) & (set(train["reset_seed"]) | set(held_out["reset_seed"]))
    assert demos["reset_seed"].is_unique


def _run(project, pipeline: str, runtime: dict | None = None) -> None:
    with KedroSession.create(project_path=project, runtime_params=runtime) as session:
        session.run(pipeline_names=[pipeline])


@pytest.mark.slow
def test_ppo_eval_and_ppo_record_demonstrations_run_and_write_their_outputs(project):
    raw = copy.deepcopy(TINY_PPO)
    (project / "conf" / "local" / "parameters_ppo.yml").write_text(yaml.safe_dump({"ppo": raw}))
    bootstrap_project(project)
    _run(project, "ppo")
    _run(project, "ppo_eval")
    _run(project, "ppo_eval", {"evaluation": {"scenarios": "fresh", "num_scenarios": 5, "animation": False}})
    _run(project, "ppo_record_demonstrations", {"demonstrations": {"num_episodes": 6}})
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        agent_version = catalog.load("ppo.agent").path.parent.name
        trained = catalog.load("ppo.eval_summary")
        versions = sorted(p.name for p in (project / "data/07_model_output/ppo_eval/eval_summary.json").iterdir())
        assert len(versions) == 2
        stored_eval, fresh_eval = (catalog.load("ppo_eval.eval_summary", version=v) for v in versions)
        episodes = catalog.load("ppo_eval.eval_episodes", version=versions[0])
        videos = catalog.load("ppo_eval.videos", version=versions[0])
        table, meta, _, _ = catalog.load("demonstrations").open("latest", "k")
        demo_scenarios = catalog.load("ppo_record_demonstrations.demonstration_scenarios")
        policy = catalog.load("ppo.policy")
    # ppo_eval on the agent's own scenarios: exactly its training run's final evaluation
    assert stored_eval["agent_version"] == agent_version and stored_eval["scenarios"] == "stored"
    assert {k: stored_eval[k] for k in trained} == trained
    assert len(episodes) == TINY_PPO["scenarios"]["num_eval"] and np.isclose(episodes["return"].mean(),
                                                                              stored_eval["return_mean"])
    assert videos["episode.gif"][:6] == b"GIF89a"
    assert fresh_eval["scenarios"] == "fresh" and fresh_eval["num_episodes"] == 5
    # ppo_record_demonstrations: one episode per scenario, step by step, from this agent
    assert meta["source_algorithm"] == "ppo" and meta["source_version"] == agent_version
    assert meta["episodes"] == 6 and len(demo_scenarios) == 6
    assert sorted(set(table["scenario_id"])) == demo_scenarios["scenario_id"].tolist()
    config = load_config("ppo", raw, 2)
    spec = env_spec(config.env)
    batch = scenarios_to_batch(demo_scenarios, spec, "demonstration_scenarios")
    steps = max_episode_steps(batch)
    returns, lengths, _ = jax.jit(lambda b: evaluate(spec, b, jax_policy(policy), steps))(batch)
    per_episode = table.groupby("scenario_id")
    np.testing.assert_array_equal(per_episode.size().to_numpy(), np.asarray(lengths))
    np.testing.assert_allclose(per_episode["reward"].sum().to_numpy(), np.asarray(returns), rtol=1e-5)
    for _, steps in per_episode:
        assert steps["step"].tolist() == list(range(len(steps)))
