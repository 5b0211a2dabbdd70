"""MLflow conventions: run names and tags, one tag scheme for the purposes, the @champion alias, the training history
in MLflow while the run trains, a stopped run's status and the run a resumed run continues."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from rlpipe.serving import champion
from rlpipe.tracking import MlflowRunEndHooks, live
from rlpipe.tracking.conventions import git_commit, purpose_of, run_name
from tests.conftest import PROJECT_ROOT, TINY_SAC
from tests.support import Watched, mlflow_state_kept, run_pipeline

KEDRO = Path(sys.executable).with_name("kedro")


def test_names_and_purposes():
    version = "2026-12-03T16.52.09.123Z"
    assert run_name("sac", "Pendulum-v1", [0], version) == f"sac-Pendulum-v1-s0-{version}"
    assert run_name("ppo", "CartPole-v1", [3, 4, 5], "v") == "ppo-CartPole-v1-s3-5-v"
    assert [purpose_of([n]) for n in ("sac", "__default__", "ppo_imitation", "sac_eval", "ppo_tune", "compare")] == \
        ["train", "train", "train", "eval", "tune", "compare"]


def test_git_commit_of_a_checkout_and_none_elsewhere(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout: no commit, no error
    assert git_commit(tmp_path / "missing") is None
    repo = tmp_path / "repo"
    repo.mkdir()
    commit = _git_commit_everything(repo)
    assert git_commit(repo) == commit and len(commit) == 40


def _git_commit_everything(repo: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *command], cwd=repo, check=True, env=env, capture_output=True, timeout=60)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One tracking store for the tests that need no project (creating one takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def test_champion_moves_only_on_a_better_eval_on_the_same_scenarios(store, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=store)
    client.create_registered_model("rlpipe-x")
    same = champion.scenario_fingerprint(pd.DataFrame({"scenario_id": [0, 1], "g": [9.8, 10.2]}))
    other = champion.scenario_fingerprint(pd.DataFrame({"scenario_id": [0, 1], "g": [9.8, 10.3]}))
    assert same != other

    def contend(mean: float, scenarios: str) -> tuple[str, dict[str, str]]:
        version = client.create_model_version("rlpipe-x", source=str(tmp_path)).version
        champion.contend("rlpipe-x", version, mean, scenarios, 2, client=client)
        held = str(client.get_model_version_by_alias("rlpipe-x", "champion").version)
        return held, client.get_model_version("rlpipe-x", version).tags

    held, tags = contend(-500.0, same)
    assert held == "1" and tags["rlpipe.champion.decision"] == "promoted"  # the first: no champion yet
    assert tags["rlpipe.eval.return_mean"] == "-500.0" and tags["rlpipe.eval.scenarios"] == same
    held, tags = contend(-600.0, same)  # worse on the same scenarios
    assert held == "1" and tags["rlpipe.champion.decision"] == "kept"
    assert tags["rlpipe.champion.compared_with"] == "1" and tags["rlpipe.champion.return_mean"] == "-500.0"
    held, tags = contend(-100.0, other)  # better, but on other scenarios: not comparable
    assert held == "1" and "other held-out scenarios" in tags["rlpipe.champion.reason"]
    held, tags = contend(-500.0, same)  # a tie does not beat it
    assert held == "1"
    held, tags = contend(-400.0, same)  # better on the same scenarios
    assert held == "5" and tags["rlpipe.champion.decision"] == "promoted"
    assert tags["rlpipe.champion.compared_with"] == "1" and tags["rlpipe.champion.return_mean"] == "-500.0"
    held, _ = contend(float("nan"), same)
    assert held == "5"


@pytest.fixture
def python_sigint():
    """SIGINT handled by Python (KeyboardInterrupt), as in a terminal: a test worker may have it ignored (which the
    hook rightly leaves alone); the disposition is put back afterwards."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def test_ctrl_c_ends_the_run_killed_and_a_failed_pipeline_failed(store, python_sigint):
    mlflow.set_tracking_uri(store)
    hooks = MlflowRunEndHooks()
    before, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupted = mlflow.start_run().info.run_id
    hooks.before_pipeline_run()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert mlflow.active_run() is None and signal.getsignal(signal.SIGINT) is before  # handlers as they were
    failed = mlflow.start_run().info.run_id
    hooks.before_pipeline_run()
    hooks.on_pipeline_error()  # what kedro-mlflow's hook left open
    assert mlflow.active_run() is None and signal.getsignal(signal.SIGTERM) is before_term
    client = mlflow.MlflowClient()
    assert client.get_run(interrupted).info.status == "KILLED"
    assert client.get_run(failed).info.status == "FAILED"


def runs(project: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    return sorted(client.search_runs([client.get_experiment_by_name("rlpipe").experiment_id]),
                  key=lambda r: r.info.start_time)


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """A tiny SAC `kedro run` stopped with SIGTERM once its first checkpoint is written (it pauses there itself and
    says so: no clock), then resumed in this process in a git checkout of the project; what the resumed run's
    progress callback found in the MLflow store while it trained."""
    project = tmp_path_factory.mktemp("conventions") / "project"
    project.mkdir()
    (project / "src").mkdir()
    (project / "pyproject.toml").write_bytes((PROJECT_ROOT / "pyproject.toml").read_bytes())
    import shutil

    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    tiny = {**TINY_SAC, "tracking": {"system_metrics": False}}
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": tiny}))
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, timeout=60).returncode != 0

    seen_while_paused = _run_until_paused_and_stop(project)
    commit = _git_commit_everything(project)
    seen: list[tuple[int, str, list[int]]] = []
    original = live.LiveHistory.__call__

    def observed(self, row):  # the store as the progress line left it, while the run still trains
        original(self, row)
        client = mlflow.MlflowClient()
        seen.append((row["env_steps"], client.get_run(self.run_id).info.status,
                     [m.step for m in client.get_metric_history(self.run_id, "sac.train.critic_loss")]))

    cwd = os.getcwd()
    os.chdir(project)
    try:
        with pytest.MonkeyPatch.context() as patch, mlflow_state_kept():
            patch.setattr(live.LiveHistory, "__call__", observed)
            version = run_pipeline(project, "sac", {"sac": {"train": {"resume": True}}})
    finally:
        os.chdir(cwd)
    return project, seen_while_paused, seen, version, commit


def _run_until_paused_and_stop(project: Path) -> list[int]:
    """Start the run, wait for its pause after the first checkpoint, read its critic-loss steps from the store,
    stop it with SIGTERM: the steps it had logged by then."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS": "1"}
    run = Watched([str(KEDRO), "run", "--pipelines=sac"], project, env)
    try:
        run.wait_for(r"RLPIPE_FAULT: paused after checkpoint 1 in process 0", timeout=400)
        (paused,) = runs(project)
        assert paused.info.status == "RUNNING"
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
        steps = [m.step for m in client.get_metric_history(paused.info.run_id, "sac.train.critic_loss")]
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=120) == -signal.SIGTERM
    finally:
        run.kill()
    return steps


# the four tests of the stopped-then-resumed run stay on one xdist worker: its module-scoped run happens once
KILLED_THEN_RESUMED = pytest.mark.xdist_group("killed_then_resumed")


@KILLED_THEN_RESUMED
@pytest.mark.slow
def test_a_stopped_run_ends_killed_after_logging_its_history_live(killed_then_resumed):
    project, seen_while_paused, _, _, _ = killed_then_resumed
    killed = runs(project)[0]
    assert killed.info.status == "KILLED"
    assert seen_while_paused == list(range(68, 129, 4))  # every point up to the paused progress line, once
    assert killed.data.tags["rlpipe.checkpoint_run"] and "rlpipe.git_commit" not in killed.data.tags


@KILLED_THEN_RESUMED
@pytest.mark.slow
def test_the_resumed_run_is_named_tagged_and_links_the_run_it_continues(killed_then_resumed):
    project, _, _, version, commit = killed_then_resumed
    killed, resumed = runs(project)
    assert resumed.info.status == "FINISHED"
    assert resumed.info.run_name == f"sac-Pendulum-v1-s3-{version}"
    tags = resumed.data.tags
    assert {k: tags.get(f"rlpipe.{k}") for k in ("algorithm", "env", "seeds", "pipeline", "purpose", "agent_version",
                                                 "git_commit", "resumed_from_run", "checkpoint_run")} == {
        "algorithm": "sac", "env": "Pendulum-v1", "seeds": "3", "pipeline": "sac", "purpose": "train",
        "agent_version": version, "git_commit": commit, "resumed_from_run": killed.info.run_id,
        "checkpoint_run": killed.data.tags["rlpipe.checkpoint_run"]}
    assert (project / "data/06_models/sac/agent" / version).is_dir()  # the agent version is the catalog's


@KILLED_THEN_RESUMED
@pytest.mark.slow
def test_the_history_is_in_mlflow_while_training_and_once_at_the_end(killed_then_resumed):
    project, _, seen, version, _ = killed_then_resumed
    _, resumed = runs(project)
    assert [(step, status) for step, status, _ in seen] == [(192, "RUNNING"), (256, "RUNNING"), (320, "RUNNING")]
    for step, _, logged in seen:  # each progress line's points were in the store before the next line
        assert logged == list(range(132, step + 1, 4))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    history = pd.read_parquet(project / "data/07_model_output/sac/training_history.parquet" / version /
                              "training_history.parquet")
    for column in ("critic_loss", "actor_loss", "env_steps_per_s"):
        logged = client.get_metric_history(resumed.info.run_id, f"sac.train.{column}")
        expected = history.dropna(subset=[column])
        assert sorted((m.step, m.value) for m in logged) == \
            list(zip(expected["env_steps"].tolist(), expected[column].tolist())), column  # each point once
    assert resumed.data.metrics["sac.eval.final.return_mean"] == pytest.approx(
        pd.read_json(project / "data/07_model_output/sac/eval_summary.json" / version / "eval_summary.json",
                     typ="series")["return_mean"])


@KILLED_THEN_RESUMED
@pytest.mark.slow
def test_the_first_registered_version_is_the_champion(killed_then_resumed):
    project, _, _, _, _ = killed_then_resumed
    _, resumed = runs(project)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    held = client.get_model_version_by_alias("rlpipe-sac", "champion")
    assert held.run_id == resumed.info.run_id and held.tags["rlpipe.champion.decision"] == "promoted"
    scenarios = pd.read_parquet(next((project / "data/02_intermediate/sac/scenarios_eval.parquet").rglob("*.parquet")))
    assert held.tags["rlpipe.eval.scenarios"] == champion.scenario_fingerprint(scenarios)
    assert resumed.data.tags["rlpipe.champion.decision"] == "promoted"
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    served = mlflow.pyfunc.load_model("models:/rlpipe-sac@champion")  # what `make serve` serves
    assert served.predict(np.zeros((2, 3), np.float32)).shape == (2, 1)
