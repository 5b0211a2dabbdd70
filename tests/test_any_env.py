"""Any environment: Gymnasium envs stepped on the host through the same pipelines, env metrics, and bad input."""

import json
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from rlpipe.rl.acting import make_evaluator, reset_envs, unroll
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.envs import make_env, scenarios_to_batch
from rlpipe.rl.envs.host import HostEnvError
from rlpipe.rl.errors import ConfigError
from tests.conftest import TINY_SAC
from tests.support import run_pipeline
from tests.test_first_contact import kedro_run, summary_of, versions, write_params
from tests.test_resilience import kill_after_checkpoints

import tests.host_envs  # noqa: F401  (registers the test envs in this process)

GYM_SAC = {**TINY_SAC, "env": {"id": "gymnasium:Pendulum-v1"}}
GYM_PPO = {"seed": 1, "env": {"id": "gymnasium:CartPole-v1"}, "scenarios": {"num_train": 8, "num_eval": 4},
           "network": {"hidden_sizes": [16, 16]},
           "train": {"total_env_steps": 1024, "num_envs": 4, "num_steps": 64, "num_minibatches": 2,
                     "update_epochs": 1, "log_every_env_steps": 256, "checkpoint_every_env_steps": 512}}


def table(rows: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame({"scenario_id": np.arange(len(rows)), "reset_seed": [r[0] for r in rows],
                         "g": [r[1] for r in rows], "max_steps_in_episode": 200})


def direct_return(seed: int, g: float, steps: int = 200) -> float:
    env = gymnasium.make("Pendulum-v1", g=g)
    env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        _, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        total += float(reward)
        if terminated or truncated:
            break
    return total


def test_host_evaluation_runs_each_scenario_from_its_seed_and_constructor_values():
    spec = make_env("gymnasium:Pendulum-v1")
    assert spec.host is not None and spec.continuous and spec.obs_dim == 3
    assert spec.param_fields == {"g": float, "max_steps_in_episode": int}  # Pendulum's constructor takes g
    scenarios = table([(5, 10.0), (5, 10.0), (5, 2.0), (6, 10.0)])
    evaluator = make_evaluator(spec, lambda params: (lambda obs: jnp.zeros((obs.shape[0], 1))), 200)
    returns, lengths = evaluator(None, scenarios_to_batch(scenarios, spec, "t"))
    assert list(lengths) == [200] * 4
    assert returns[0] == returns[1]  # same seed, same g: the same episode
    expected = [direct_return(5, 10.0), direct_return(5, 2.0), direct_return(6, 10.0)]
    np.testing.assert_allclose(returns[[0, 2, 3]], expected, rtol=1e-5)  # what Gymnasium itself gives
    assert len(set(np.round(expected, 3))) == 3


def test_compiled_unroll_steps_host_envs_and_restarts_finished_episodes_on_scenarios():
    """Inside one compiled program: 2 envs, 450 zero-action steps of 200-step episodes. Each env's first episode
    is Gymnasium's own episode of the scenario it was given; episodes end at 200 and restart."""
    spec = make_env("gymnasium:Pendulum-v1")
    scenarios = table([(11, 10.0), (12, 4.0), (13, 7.0)])
    batch = scenarios_to_batch(scenarios, spec, "t")
    policy = lambda obs, key: (jnp.zeros((obs.shape[0], 1)), ())  # noqa: E731
    key = jax.random.PRNGKey(0)

    @jax.jit
    def run(key):
        reset_key, unroll_key = jax.random.split(key)
        envs = reset_envs(spec, batch, reset_key, 2)
        return unroll(spec, batch, policy, lambda a: a, envs, unroll_key, 450)

    try:
        _, rollout, stats = run(key)
    finally:
        spec.close_host_envs()
    picked = np.asarray(jax.random.randint(jax.random.split(key)[0], (2,), 0, 3))
    rewards = np.asarray(rollout.transition.reward)
    done = np.asarray(rollout.done)
    for env in range(2):
        seed, g = scenarios.loc[picked[env], ["reset_seed", "g"]]
        np.testing.assert_allclose(rewards[:200, env].sum(), direct_return(int(seed), float(g)), rtol=1e-5)
        assert list(np.flatnonzero(done[:, env])) == [199, 399]
    assert float(stats.count) == 4.0


@pytest.mark.slow
def test_gymnasium_sac_and_ppo_run_through_the_pipelines_reproducibly(project):
    write_params(project, "sac", GYM_SAC)
    write_params(project, "ppo", GYM_PPO)
    for run in range(2):  # in this process: what is checked is the pipelines' outputs, not the command line
        run_pipeline(project, "sac")
    first, second = versions(project, "data/07_model_output/sac/eval_summary.json")
    a, b = summary_of(project, "sac", first), summary_of(project, "sac", second)
    assert a["env_id"] == "gymnasium:Pendulum-v1" and a["num_episodes"] == 4
    assert a["return_mean"] == b["return_mean"] and np.isfinite(a["return_mean"])  # same seed: same result
    assert versions(project, "data/08_reporting/sac/policy_animation.gif")
    run_pipeline(project, "ppo")
    (version,) = versions(project, "data/07_model_output/ppo/eval_summary.json")
    summary = summary_of(project, "ppo", version)
    assert summary["env_id"] == "gymnasium:CartPole-v1" and 1 <= summary["length_mean"] <= 500
    # the stored agent evaluates to the same summary in the eval pipeline (host evaluation is deterministic)
    run_pipeline(project, "sac_eval")
    (eval_version,) = versions(project, "data/07_model_output/sac_eval/eval_summary.json")
    assert summary_of(project, "sac_eval", eval_version)["return_mean"] == b["return_mean"]


@pytest.mark.slow
def test_env_metrics_are_reported_per_scenario_and_in_the_summary(project):
    env_id = "gymnasium:tests.host_envs:SuccessPendulum-v0"
    write_params(project, "sac", {**GYM_SAC, "env": {"id": env_id, "metrics": ["is_success", "upright"]}})
    run_pipeline(project, "sac")  # tests.host_envs registered its envs in this process
    (version,) = versions(project, "data/07_model_output/sac/eval_summary.json")
    summary = summary_of(project, "sac", version)
    episodes = pd.read_parquet(project / "data/07_model_output/sac/eval_episodes.parquet" / version /
                               "eval_episodes.parquet")
    for name in ("is_success", "upright", "is_success_final", "upright_final"):
        assert np.isclose(summary[f"env.{name}"], episodes[f"env.{name}"].mean())
    assert set(episodes["env.is_success_final"]) <= {0.0, 1.0}  # a boolean: its mean is a success rate
    assert np.all(episodes["env.upright"].between(-1, 1))  # cos(theta), averaged over each episode


def test_gymnax_env_metrics_come_from_the_step_info():
    config = load_config("sac", {**TINY_SAC, "env": {"metrics": ["discount"]}}, 2)
    assert config.env.metrics == ("discount",)
    spec = make_env("Pendulum-v1")
    scenarios = table([(1, 10.0), (2, 10.0)]).assign(m=1.0, l=1.0, dt=0.05, max_speed=8.0, max_torque=2.0)
    evaluator = make_evaluator(spec, lambda p: (lambda obs: jnp.zeros((obs.shape[0], 1))), 200, ("discount",))
    evaluator(None, scenarios_to_batch(scenarios, spec, "t"))
    np.testing.assert_array_equal(evaluator.last_metrics["discount"], [1.0, 1.0])  # never terminates


@pytest.mark.parametrize("env,key,phrase", [
    ({"id": "gymnasium:Pendulum-v2"}, "sac.env.id", "did you mean Pendulum-v1"),
    ({"id": "gymnasium:CartPole-v1"}, "sac.env.id", "discrete action space"),
    ({"id": "gymnasium:Pendulum-v1", "kwargs": {"gravity": 3.0}}, "sac.env.kwargs", "unexpected keyword argument"),
    ({"id": "gymnasium:tests.host_envs:NeedsMujoco-v0"}, "sac.env.id", "pip install -e '.[mujoco]'"),
    ({"id": "gymnasium:Pendulum-v1", "metrics": ["is_succes"]}, "sac.env.metrics", "never reports 'is_succes'"),
    ({"id": "Pendulum-v1", "metrics": ["discont"]}, "sac.env.metrics", "did you mean 'discount'"),
    ({"id": "Pendulum-v1", "kwargs": {"g": 3.0}}, "sac.env.id", "scenarios.ranges"),
    ({"id": "gymnasium:Pendulum-v1", "vector": "threads"}, "sac.env.vector", "sync"),
])
def test_bad_environment_input_is_a_config_error_naming_the_key(env, key, phrase):
    with pytest.raises(ConfigError) as caught:
        load_config("sac", {**TINY_SAC, "env": env}, 2)
    assert caught.value.key == key and phrase in str(caught.value), str(caught.value)


@pytest.mark.slow
def test_an_env_that_raises_stops_the_run_with_its_id_step_and_message_and_keeps_the_checkpoints(project):
    env_id = "gymnasium:tests.host_envs:FailingPendulum-v0"
    params = {**GYM_SAC, "env": {"id": env_id, "kwargs": {"fail_after": 300}},
              "train": {**GYM_SAC["train"], "total_env_steps": 640, "checkpoint_every_env_steps": 128}}
    write_params(project, "sac", params)
    done = kedro_run(project, "--pipelines=sac", extra_env={"PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert "Environment error:" in lines
    message = lines[lines.index("Environment error:") + 1]
    assert "tests.host_envs:FailingPendulum-v0" in message and "raised in step" in message
    assert "RuntimeError: simulator exploded" in message
    assert "Traceback" not in done.stdout + done.stderr
    kept = sorted((project / "data/06_models/sac_checkpoints").glob("*/step_*/meta.json"))
    assert kept  # the checkpoints written before the failure are on disk
    assert not versions(project, "data/06_models/sac/agent")


@pytest.mark.slow
def test_a_host_env_run_resumes_from_its_checkpoint_with_fresh_episodes(project):
    write_params(project, "sac", {**GYM_SAC, "train": {**GYM_SAC["train"], "checkpoint_every_env_steps": 64}})
    kill_after_checkpoints(project, "sac", count=2)  # waits for the run to say it paused there, then SIGKILLs it
    taken = sorted((project / "data/06_models/sac_checkpoints").glob("*/step_*/meta.json"))
    stored = json.loads(taken[-1].read_text())
    resumed = kedro_run(project, "--pipelines=sac", "--params", "sac.train.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = " ".join((resumed.stdout + resumed.stderr).split())
    assert "freshly reset episodes" in log and "resuming" in log
    (version,) = versions(project, "data/07_model_output/sac/training_history.parquet")
    history = pd.read_parquet(project / "data/07_model_output/sac/training_history.parquet" / version /
                              "training_history.parquet")
    before = pd.DataFrame(stored["progress"]["curve"])  # the history's points up to the checkpoint come back
    assert len(before) and len(history) > len(before)
    pd.testing.assert_frame_equal(history.iloc[:len(before)][before.columns].reset_index(drop=True), before,
                                  check_dtype=False)
    assert history["env_steps"].iloc[-1] == TINY_SAC["train"]["total_env_steps"]


def test_host_env_errors_name_the_env_and_step():
    spec = make_env("gymnasium:tests.host_envs:FailingPendulum-v0", {"fail_after": 5})
    scenarios = table([(1, 10.0)]).assign(fail_after=5)  # a numeric constructor argument: a scenario column
    tests.host_envs.FailingPendulum.steps_in_process = 0
    evaluator = make_evaluator(spec, lambda p: (lambda obs: jnp.zeros((obs.shape[0], 1))), 200)
    with pytest.raises(HostEnvError, match=r"FailingPendulum-v0 raised in step 6 of its episode: RuntimeError"):
        evaluator(None, scenarios_to_batch(scenarios, spec, "t"))


@pytest.mark.slow
def test_a_mujoco_task_runs_end_to_end_with_scenario_drawn_constructor_values(project, capfd):
    """HalfCheetah-v5 (the mujoco extra) through the SAC pipeline: a constructor argument drawn per scenario,
    MuJoCo's own metrics in the evaluation, and MuJoCo's per-env warnings kept off the console and out of the cwd."""
    params = {**TINY_SAC, "env": {"id": "gymnasium:HalfCheetah-v5", "metrics": ["reward_forward", "x_velocity"]},
              "scenarios": {"num_train": 8, "num_eval": 2, "ranges": {"reset_noise_scale": [0.05, 0.15]}},
              "buffer": {"capacity": 512, "prefill_steps": 32},
              "train": {**TINY_SAC["train"], "total_env_steps": 192, "num_envs": 2}}
    write_params(project, "sac", params)
    run_pipeline(project, "sac")  # in this process: capfd sees what reaches its stdout and stderr, C code's too
    assert "settotalmass" not in "".join(capfd.readouterr()) and not (project / "MUJOCO_LOG.TXT").exists()
    (version,) = versions(project, "data/07_model_output/sac/eval_summary.json")
    summary = summary_of(project, "sac", version)
    assert summary["env_id"] == "gymnasium:HalfCheetah-v5" and summary["length_mean"] == 1000
    assert np.isfinite(summary["env.reward_forward"]) and np.isfinite(summary["env.x_velocity_final"])
    table_ = pd.read_parquet(project / "data/02_intermediate/sac/scenarios_eval.parquet" / version /
                             "scenarios_eval.parquet")
    assert table_["reset_noise_scale"].between(0.05, 0.15).all() and table_["reset_noise_scale"].nunique() == 2
    assert set(table_.columns) >= {"forward_reward_weight", "ctrl_cost_weight", "frame_skip", "max_steps_in_episode"}


def test_the_documented_halfcheetah_config_is_valid():
    """conf/sac_halfcheetah (SAC on HalfCheetah-v5, zoo-like hyperparameters) passes validation."""
    import yaml

    raw = yaml.safe_load((Path(__file__).parents[1] / "conf/sac_halfcheetah/parameters_sac.yml").read_text())["sac"]
    config = load_config("sac", raw, 1)
    assert config.env.id == "gymnasium:HalfCheetah-v5" and config.network.hidden_sizes == (256, 256)
    assert (config.train.batch_size, config.train.grad_updates_per_iter, config.buffer.prefill_steps) == (256, 1, 10000)


@pytest.mark.slow
def test_a_brax_task_runs_end_to_end_inside_the_compiled_program(project):
    """brax:reacher (the brax extra, spring backend) through the SAC pipeline on 2 devices: episode lengths from the
    scenarios' max_steps_in_episode, the env's own metrics in the evaluation, a film of its observation. Reacher, not
    hopper: the same path, and each program holding its physics compiles in 5.6 s instead of 7.8 s (measured
    2026-12-06, AMD EPYC, 2 cores: a 10-step spring rollout on 2 envs); the whole test alone 49 s instead of 58 s."""
    params = {**TINY_SAC, "env": {"id": "brax:reacher", "kwargs": {"backend": "spring"},
                                  "metrics": ["reward_dist", "reward_ctrl"]},
              "scenarios": {"num_train": 8, "num_eval": 2, "ranges": {"max_steps_in_episode": [50, 80]}},
              "buffer": {"capacity": 512, "prefill_steps": 32},
              "train": {**TINY_SAC["train"], "total_env_steps": 128, "num_envs": 2}}
    write_params(project, "sac", params)
    run_pipeline(project, "sac")  # in this process
    (version,) = versions(project, "data/07_model_output/sac/eval_summary.json")
    summary = summary_of(project, "sac", version)
    episodes = pd.read_parquet(project / "data/07_model_output/sac/eval_episodes.parquet" / version /
                               "eval_episodes.parquet")
    table_ = pd.read_parquet(project / "data/02_intermediate/sac/scenarios_eval.parquet" / version /
                             "scenarios_eval.parquet")
    assert summary["env_id"] == "brax:reacher" and np.isfinite(summary["env.reward_dist"])
    assert np.all(episodes["length"].to_numpy() <= table_["max_steps_in_episode"].to_numpy())
    assert versions(project, "data/08_reporting/sac/policy_animation.gif")


def test_a_brax_observation_size_comes_from_a_traced_reset_never_run():
    """Checking a brax config must not run Brax's reset op by op (seconds of compiling small programs)."""
    from rlpipe.rl.envs.brax import BraxEnv

    env = BraxEnv("hopper", {"backend": "spring"})
    reset, seen = env.inner.reset, []
    env.inner.reset = lambda key: (seen.append(isinstance(key, jax.core.Tracer)), reset(key))[1]
    size = env.observation_space(env.default_params).shape[0]
    assert seen == [True]  # one call, on a tracer
    assert size == env.inner.observation_size == 11  # Brax's own answer (which runs a reset)


@pytest.mark.parametrize("env,ranges,key,phrase", [
    ({"id": "brax:hoper"}, {}, "sac.env.id", "did you mean hopper"),
    ({"id": "brax:hopper", "kwargs": {"backnd": "spring"}}, {}, "sac.env.kwargs", "refused the keyword arguments"),
    ({"id": "brax:hopper"}, {"mass": [1.0, 2.0]}, "sac.scenarios.ranges.mass", "has no parameter 'mass'"),
])
def test_bad_brax_input_is_a_config_error_naming_the_key(env, ranges, key, phrase):
    with pytest.raises(ConfigError) as caught:
        load_config("sac", {**TINY_SAC, "env": env, "scenarios": {"num_train": 8, "num_eval": 2, "ranges": ranges}}, 2)
    assert caught.value.key == key and phrase in str(caught.value), str(caught.value)
