"""The SAC pipeline through Kedro: in-process with the runner, and from the command line as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT, TINY_SAC
from tests.support import run_pipeline

VERSIONED = {
    "sac.scenarios_train": "data/02_intermediate/sac/scenarios_train.parquet",
    "sac.scenarios_eval": "data/02_intermediate/sac/scenarios_eval.parquet",
    "sac.prefill_transitions": "data/03_primary/sac/prefill_transitions.npz",
    "sac.agent": "data/06_models/sac/agent",
    "sac.training_history": "data/07_model_output/sac/training_history.parquet",
    "sac.eval_episodes": "data/07_model_output/sac/eval_episodes.parquet",
    "sac.eval_summary": "data/07_model_output/sac/eval_summary.json",
}


@pytest.fixture
def tiny_project(project):
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": TINY_SAC}))
    return project


def versions(root: Path, rel: str) -> list[str]:
    folder = root / rel
    return sorted(p.name for p in folder.iterdir() if (p / folder.name).exists()) if folder.is_dir() else []


@pytest.mark.slow  # the SAC runner test below stays in the fast tier
def test_ppo_pipeline_through_the_runner(project):
    from tests.test_ppo import TINY_PPO

    (project / "conf" / "local" / "parameters_ppo.yml").write_text(yaml.safe_dump({"ppo": TINY_PPO}))
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        session.run(pipeline_names=["ppo"])
    for name, rel in VERSIONED.items():
        rel = rel.replace("/sac/", "/ppo/")
        expected = 0 if name == "sac.prefill_transitions" else 1  # PPO has no buffer stages
        assert len(versions(project, rel)) == expected, name
    assert len(versions(project, "data/06_models/ppo/policy")) == 1
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        agent = catalog.load("ppo.agent")
        assert agent["meta"]["algorithm"] == "ppo" and agent["meta"]["env_steps"] == 1024
        history = catalog.load("ppo.training_history")
        points = history.dropna(subset=["policy_loss"])  # besides them, a row per finished episode
        assert list(points["env_steps"]) == list(range(64, 1025, 64))  # a point per iteration
        assert (history["env_steps"].is_monotonic_increasing
                and history.loc[history["policy_loss"].isna(), "episode_return"].notna().all())
        assert list(history.dropna(subset=["train_seconds"])["env_steps"]) == [256, 512, 768, 1024]  # log lines
        assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance"} <= set(
            history.columns)
        summary = catalog.load("ppo.eval_summary")
        assert summary["algorithm"] == "ppo" and summary["num_episodes"] == 4


def test_ppo_pendulum_environment_config_is_valid():
    """The documented continuous-action config (conf/ppo_pendulum) passes validation on top of the base one."""
    from rlpipe.rl.algorithm import load_config

    raw = yaml.safe_load((PROJECT_ROOT / "conf/ppo_pendulum/parameters_ppo.yml").read_text())["ppo"]
    config = load_config("ppo", raw, num_devices=2)
    assert config.env.id == "Pendulum-v1" and config.train.normalize_observations


def test_every_catalog_entry_is_written_by_the_runner(tiny_project):
    bootstrap_project(tiny_project)
    with KedroSession.create(project_path=tiny_project) as session:
        session.run(pipeline_names=["sac"])
    for name, rel in VERSIONED.items():
        assert len(versions(tiny_project, rel)) == 1, name

    with KedroSession.create(project_path=tiny_project) as session:
        catalog = session.load_context().catalog
        train, evaluation = catalog.load("sac.scenarios_train"), catalog.load("sac.scenarios_eval")
        assert len(train) == 8 and len(evaluation) == 4
        assert not set(train["reset_seed"]) & set(evaluation["reset_seed"])
        buffer = catalog.load("sac.prefill_transitions")
        assert buffer["obs"].shape == (64, 3) and buffer["action"].shape == (64, 1)
        assert np.abs(buffer["action"]).max() <= 1.0
        agent = catalog.load("sac.agent")
        assert agent["meta"]["config"]["train"]["total_env_steps"] == 320 and agent["meta"]["env_steps"] == 320
        assert int(agent["state"]["training"]["grad_steps"]) == (320 - 64) // 4 * 2
        assert agent["meta"]["num_devices"] == 2
        # one global buffer (two shards of 256 on the mesh), stored once; reading the policy skips it
        assert set(agent.part("training")) >= {"actor_params", "critic_params", "log_alpha"}
        assert agent["state"]["device"]["buffer"]["data"]["obs"].shape == (512, 3)
        history = catalog.load("sac.training_history")
        assert list(history["env_steps"]) == list(range(68, 321, 4))  # 64 prefill, then a point per iteration
        assert list(history.dropna(subset=["train_seconds"])["env_steps"]) == [128, 192, 256, 320]
        episodes = catalog.load("sac.eval_episodes")
        assert list(episodes["scenario_id"]) == list(evaluation["scenario_id"]) and (episodes["length"] == 200).all()
        summary = catalog.load("sac.eval_summary")
        assert summary["num_episodes"] == 4
        assert summary["return_mean"] == pytest.approx(float(episodes["return"].mean()), rel=1e-5)
    checkpoints = list((tiny_project / "data/06_models/sac_checkpoints").glob("*/step_*"))
    # the final checkpoint became the agent (moved, not copied); the run folder says where it went
    assert sorted(p.name for p in checkpoints) == ["step_0000000128", "step_0000000256"]
    run_dir = checkpoints[0].parent
    assert "step_0000000320" in (run_dir / "FINAL").read_text() and (run_dir / "COMPLETE").is_file()


def kedro_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run([str(kedro), "run", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_a_cli_run_then_a_session_run_keep_both_versions_and_are_bitwise_the_same(tiny_project):
    """``kedro run`` in a fresh interpreter, then the same run in this process (after whatever this worker ran
    before): nothing of the first is overwritten, and the two agree bit for bit."""
    first = kedro_run(tiny_project, "--pipelines=sac")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "env steps" in first.stdout + first.stderr  # progress lines
    run_pipeline(tiny_project, "sac")
    for name, rel in VERSIONED.items():
        assert len(versions(tiny_project, rel)) == 2, name  # nothing overwritten

    summaries = [json.loads((tiny_project / VERSIONED["sac.eval_summary"] / v / "eval_summary.json").read_text())
                 for v in versions(tiny_project, VERSIONED["sac.eval_summary"])]
    assert summaries[0] == summaries[1]
    from rlpipe.rl.checkpoint import load_checkpoint

    agents = [load_checkpoint(tiny_project / VERSIONED["sac.agent"] / v / "agent")[0]
              for v in versions(tiny_project, VERSIONED["sac.agent"])]
    import jax

    flat_a, tree_a = jax.tree.flatten(agents[0])
    flat_b, tree_b = jax.tree.flatten(agents[1])
    assert tree_a == tree_b
    for a, b in zip(flat_a, flat_b):
        np.testing.assert_array_equal(a, b)


def test_bad_parameter_stops_before_any_work(tiny_project):
    result = kedro_run(tiny_project, "--pipelines=sac", "--params", "sac.train.batchsize=32")
    assert result.returncode != 0
    assert "sac.train.batchsize: unknown key (did you mean 'batch_size'?)" in result.stdout + result.stderr
    assert not (tiny_project / "data").exists() or not any((tiny_project / "data").rglob("*.parquet"))


def test_default_pipeline_is_sac():
    from kedro.framework.project import configure_project

    from rlpipe.pipeline_registry import register_pipelines

    configure_project("rlpipe")
    pipelines = register_pipelines()
    assert {"sac", "ppo", "__default__"} <= set(pipelines)
    assert set(pipelines["__default__"].all_outputs()) == set(pipelines["sac"].all_outputs())
    assert {n.name for n in pipelines["sac"].nodes} == {
        "sac.load_config", "sac.generate_scenarios", "sac.init_agent", "sac.find_resume", "sac.prefill_buffer",
        "sac.train", "sac.evaluate", "sac.export_policy", "sac.export_seed_policies", "sac.track_metrics",
        "sac.plot_learning_curve", "sac.plot_eval_returns", "sac.animate_policy"}
