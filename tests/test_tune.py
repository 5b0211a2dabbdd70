"""The search pipelines (issue 12): the space checked before any trial, concurrent workers on one study, a killed
worker's trial marked failed, the best parameters usable by the next run, every trial a nested MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from rlpipe.rl import tuning
from rlpipe.rl.errors import ConfigError
from tests.conftest import TINY_SAC
from tests.support import Watched, run_pipeline

optuna = pytest.importorskip("optuna")

KEDRO = Path(sys.executable).with_name("kedro")

SEARCH = {
    "study_name": "tiny",
    "n_trials": 4,
    "num_seeds": 2,
    "heartbeat_interval_s": 1,
    "grace_period_s": 3,
    "sampler": {"seed": 0, "n_startup_trials": 2},
    "pruner": {"n_startup_trials": 2},
    "base": {"train": {"total_env_steps": 256, "eval_every_env_steps": 128, "log_every_env_steps": 64}},
    "space": {"train.learning_rate": {"type": "log_float", "low": 1e-4, "high": 3e-3},
              "network.hidden_sizes": {"type": "categorical", "choices": [[16, 16], [32, 32]]}},
}


def write(project: Path, search: dict) -> None:
    local = project / "conf" / "local"
    (local / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": TINY_SAC}))
    (local / "parameters_sac_tune.yml").write_text(yaml.safe_dump({"sac_tune": search}))


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out.pop("RLPIPE_VERBOSE", None)
    return out


def worker(project: Path, index: int, extra: dict | None = None) -> Watched:
    return Watched([str(KEDRO), "run", "--pipelines=sac_tune", "--params", f"sac_tune.worker={index}"], project,
                   {**env(), **(extra or {})})


def study(project: Path, name: str = "tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{project / 'data/09_tuning/sac_tune.db'}")


def latest(project: Path, rel: str) -> Path:
    folder = project / rel
    return folder / sorted(p.name for p in folder.iterdir())[-1] / folder.name


def test_workers_started_together_on_an_empty_sqlite_file_all_open_the_one_study(tmp_path):
    """Workers started at once on a new SQLite file each create its tables and schema version row; the ones that
    lose that race ("UNIQUE constraint failed: alembic_version") open the study the winner made instead of stopping.
    Four processes, six fresh files: without the retry, 3 runs of 3 failed (in round 0 or 1)."""
    rounds = 6
    command = [sys.executable, "-m", "tests.study_opener", str(tmp_path), str(rounds)]
    workers = [Watched(command, Path(__file__).parents[1], env()) for _ in range(4)]
    try:
        for round_ in range(rounds):
            for process in workers:
                process.wait_for(f"^ready {round_}$", timeout=120)
            (tmp_path / f"go-{round_}").touch()
            outcomes = [process.wait_for(f"^(opened|failed) {round_}.*", timeout=60)[0] for process in workers]
            assert outcomes == [f"opened {round_}"] * len(workers), outcomes
            assert optuna.get_all_study_names(f"sqlite:///{tmp_path / f'{round_}.db'}") == ["race"]
        assert [process.finish(timeout=60) for process in workers] == [0] * len(workers)
    finally:
        for process in workers:
            process.kill()


@pytest.mark.parametrize("space,key,phrase", [
    ({"train.learnin_rate": {"type": "float", "low": 0.1, "high": 0.2}}, "sac_tune.space.train.learnin_rate",
     "has no config key"),
    ({"train.learning_rate": {"type": "log_float", "low": 0.0, "high": 0.1}}, "sac_tune.space.train.learning_rate.low",
     "log-uniform"),
    ({"train.tau": {"type": "float", "low": 0.5, "high": 0.1}}, "sac_tune.space.train.tau.low", "not below high"),
    ({"train.batch_size": {"type": "categorical", "choices": [16, 100000]}}, "sac_tune.space.train.batch_size",
     "invalid sac config"),
    ({"train.gamma": {"type": "float", "low": 0.9, "high": 1.5}}, "sac_tune.space.train.gamma", "invalid sac config"),
], ids=["unknown key", "log of zero", "low above high", "batch beyond the buffer", "gamma out of range"])
def test_a_bad_space_is_named_before_any_trial(space, key, phrase):
    tune = tuning.load_tune_config({**SEARCH, "space": space}, "sac_tune")
    with pytest.raises(ConfigError) as error:
        tuning.check_space("sac", TINY_SAC, tune, 2, "sac_tune")
    assert error.value.key == key and phrase in str(error.value)


@pytest.mark.slow  # three kedro runs; the space checks above stay fast
def test_bad_search_input_on_the_command_line_is_one_short_message(project):
    write(project, SEARCH)
    cases = [
        (["--params", "sac_tune.space.train.tua.type=float"], "sac_tune.space.train.tua"),
        (["--params", "sac_tune.storage=sqlite:////no/such/folder/study.db"], "sac_tune.storage"),
    ]
    for args, key in cases:
        done = subprocess.run([sys.executable, "-X", "importtime", str(KEDRO), "run", "--pipelines=sac_tune", *args],
                              cwd=project, env=env(), capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 2, output[-2000:]
        assert key in output and "Traceback" not in output, output[-2000:]
        # found by the early check: before Kedro's session, MLflow, Optuna or JAX are loaded
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:")}
        assert not {"mlflow", "optuna", "jax", "kedro_mlflow"} & imported, sorted(imported)
    assert not (project / "data/09_tuning/sac_tune").exists()  # no trial ran, nothing written
    # a stored study with another direction: named, before any trial
    (project / "data/09_tuning").mkdir(parents=True)
    optuna.create_study(study_name="tiny", direction="minimize",
                        storage=f"sqlite:///{project / 'data/09_tuning/sac_tune.db'}")
    done = subprocess.run([sys.executable, "-X", "importtime", str(KEDRO), "run", "--pipelines=sac_tune"],
                          cwd=project, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "sac_tune.direction" in done.stdout + done.stderr, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not {"mlflow", "jax", "kedro_mlflow"} & imported, sorted(imported)  # the early check found it too
    assert len(study(project).trials) == 0


@pytest.mark.slow
def test_two_workers_share_one_study_and_the_best_params_run(project):
    write(project, SEARCH)
    workers = [worker(project, 0), worker(project, 1)]
    try:
        codes = [w.finish(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert codes == [0, 0], "\n".join(w.text[-3000:] for w in workers)
    trials = study(project).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) >= SEARCH["n_trials"]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    # every trial is a nested MLflow run under a worker's run of the study
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`rlpipe.study` = 'tiny'",
                              output_format="list")
    parents = {r.info.run_id for r in runs if "rlpipe.trial" not in r.data.tags}
    children = [r for r in runs if "rlpipe.trial" in r.data.tags]
    assert len(parents) == 2
    assert sorted(int(r.data.tags["rlpipe.trial"]) for r in children) == sorted(numbers)
    assert all(r.data.tags.get("mlflow.parentRunId") in parents for r in children)
    # the best params: the whole sac section, taken as it is by the next run
    best = yaml.safe_load(latest(project, "data/09_tuning/sac_tune/best_params.yml").read_text())
    winner = study(project).best_trial
    assert best["sac"]["train"]["learning_rate"] == pytest.approx(winner.params["train.learning_rate"])
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump(best))
    run_pipeline(project, "sac")  # in this process: the workers above were the command line's
    policy = json.loads((latest(project, "data/06_models/sac/policy") / "policy.json").read_text())
    assert policy["hidden_sizes"] == json.loads(winner.params["network.hidden_sizes"])
    assert policy["num_seeds"] == SEARCH["num_seeds"]


@pytest.mark.slow
def test_a_killed_worker_leaves_a_failed_trial_and_the_study_goes_on(project):
    write(project, {**SEARCH, "n_trials": 3})
    doomed = worker(project, 0, {"RLPIPE_FAULT_PAUSE_IN_TRIAL": "0"})
    try:
        doomed.wait_for(r"RLPIPE_FAULT: paused in trial 0", timeout=300)
        doomed.proc.send_signal(signal.SIGKILL)
        assert doomed.finish(timeout=30) == -signal.SIGKILL
    finally:
        doomed.kill()
    survivor = worker(project, 1)
    try:
        code = survivor.finish(timeout=600)
    finally:
        survivor.kill()
    assert code == 0, survivor.text[-3000:]
    states = {t.number: t.state.name for t in study(project).trials}
    assert states[0] == "FAIL", states
    assert all(state in ("COMPLETE", "PRUNED") for number, state in states.items() if number), states
    assert len(states) == 3


@pytest.mark.slow
def test_a_trial_that_diverges_is_pruned_with_its_reason_and_the_study_goes_on(project):
    """Two trials in this process, one on a pendulum whose reward turns NaN mid-episode (tests.nan_env): that one is
    pruned, its reason (the iteration and the quantity) kept on the trial and its MLflow run; the other completes."""
    from rlpipe.pipelines.tuning import run_study, validated_search

    search = {**SEARCH, "study_name": "nan", "n_trials": 2, "num_seeds": 1,
              "base": {"train": {"total_env_steps": 1024, "eval_every_env_steps": 512, "log_every_env_steps": 128}},
              "space": {"env.id": {"type": "categorical",
                                   "choices": ["Pendulum-v1", "tests.nan_env:NaNRewardPendulum"]}}}
    tune = validated_search("sac", TINY_SAC, search)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        with mlflow.start_run(run_name="nan-study"):
            trials, best, *_ = run_study("sac", TINY_SAC, tune)
        runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`rlpipe.study` = 'nan'",
                                  output_format="list")
    finally:
        mlflow.set_tracking_uri(previous)
    by_env = {tuning.decoded(t.params)["env.id"]: t for t in study(project, "nan").trials}
    assert set(by_env) == {"Pendulum-v1", "tests.nan_env:NaNRewardPendulum"}, by_env  # the sampler tried both
    diverged, healthy = by_env["tests.nan_env:NaNRewardPendulum"], by_env["Pendulum-v1"]
    assert diverged.state.name == "PRUNED" and healthy.state.name == "COMPLETE"
    reason = diverged.user_attrs["pruned_reason"]
    assert "training diverged" in reason and "critic_loss" in reason, reason
    assert "pruned_reason" not in healthy.user_attrs
    assert best["sac"]["env"]["id"] == "Pendulum-v1"
    tags = {int(r.data.tags["rlpipe.trial"]): r.data.tags for r in runs if "rlpipe.trial" in r.data.tags}
    assert tags[diverged.number]["rlpipe.trial_state"] == "PRUNED"
    assert tags[diverged.number]["rlpipe.pruned_reason"] == reason[:500]
    assert tags[healthy.number]["rlpipe.trial_state"] == "COMPLETE"
