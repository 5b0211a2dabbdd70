"""The search on a real PostgreSQL server (tests.postgres_server): two ``sac_tune`` workers share one study through
the credentials, one is killed mid-trial, and the study still ends with unique trial numbers, the killed trial
failed, its ``n_trials`` done and best parameters the next run takes; and an unreachable server is one line that
names it, before any trial."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
import yaml

from rlpipe.rl.errors import ConfigError
from tests.postgres_server import free_port, new_database, postgres_server  # noqa: F401 - the fixture, by name
from tests.support import Watched, run_pipeline
from tests.test_tune import KEDRO, SEARCH, env, latest, worker, write

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[dev]' (psycopg[binary])")

PASSWORD = "pw-Kq27vXs"  # the unreachable server's: it must never be shown


def share_study(project, url: str, search: dict) -> None:
    """The project's search on the storage ``url``, given through the credentials as a user would."""
    write(project, {**search, "storage_credentials": "study_db"})
    (project / "conf" / "local" / "credentials.yml").write_text(yaml.safe_dump({"study_db": {"url": url}}))


def first_to_print(workers: list[Watched], pattern: str, timeout: float) -> Watched:
    """The worker that prints a line with ``pattern`` first; fails after ``timeout`` seconds or if all ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for candidate in workers:
            if any(pattern in line for line in list(candidate.lines)):
                return candidate
        if all(w.proc.poll() is not None for w in workers):
            break
        time.sleep(0.2)
    pytest.fail(f"no worker printed {pattern!r} within {timeout} s:\n" + "\n".join(w.text[-3000:] for w in workers))


def wait_until_running(url: str, name: str, number: int, timeout: float) -> None:
    """Until trial ``number`` of the study is RUNNING on the server (what the other worker and the heartbeat see)."""
    deadline, states = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        states = {t.number: t.state.name for t in optuna.load_study(study_name=name, storage=url).trials}
        if states.get(number) == "RUNNING":
            return
        time.sleep(0.2)
    pytest.fail(f"trial {number} not RUNNING in the study within {timeout} s: {states}")


@pytest.mark.slow  # two kedro workers and a training run of the best parameters
def test_two_workers_on_postgresql_survive_a_killed_worker_and_the_best_params_run(project, postgres_server):
    url, name = postgres_server.url(), "shared"
    share_study(project, url, {**SEARCH, "study_name": name, "n_trials": 2})
    # both workers pause in trial 0; only one of them gets it (the study hands out each number once): that one dies
    workers = [worker(project, index, {"RLPIPE_FAULT_PAUSE_IN_TRIAL": "0"}) for index in (0, 1)]
    try:
        doomed = first_to_print(workers, "RLPIPE_FAULT: paused in trial 0", timeout=300)
        survivor = workers[1 - workers.index(doomed)]
        wait_until_running(url, name, 0, timeout=30)
        doomed.proc.send_signal(signal.SIGKILL)
        assert doomed.finish(timeout=30) == -signal.SIGKILL
        code = survivor.finish(timeout=600)
    finally:
        for w in workers:
            w.kill()
    assert code == 0, survivor.text[-3000:]
    study = optuna.load_study(study_name=name, storage=url)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(2)) == sorted(set(numbers))  # n_trials, each number once
    states = {t.number: t.state.name for t in study.trials}
    assert states[0] == "FAIL", states  # the killed worker's trial, once its heartbeat went stale
    assert all(state in ("COMPLETE", "PRUNED") for number, state in states.items() if number), states
    assert "paused in trial" not in survivor.text
    # the survivor's best params: the whole sac section, taken as it is by the next run
    best = yaml.safe_load(latest(project, "data/09_tuning/sac_tune/best_params.yml").read_text())
    winner = study.best_trial
    assert best["sac"]["train"]["learning_rate"] == pytest.approx(winner.params["train.learning_rate"])
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump(best))
    run_pipeline(project, "sac")
    policy = json.loads((latest(project, "data/06_models/sac/policy") / "policy.json").read_text())
    assert policy["hidden_sizes"] == json.loads(winner.params["network.hidden_sizes"])


def test_workers_started_together_on_an_empty_database_all_open_the_one_study(postgres_server):
    """Each worker creates the tables and types of an empty database; the ones that lose that race open the study
    the winner made, instead of stopping with "duplicate key ... already exists"."""
    from rlpipe.pipelines.tuning import open_study, validated_search
    from tests.conftest import TINY_SAC

    url = new_database(postgres_server, "race")
    tune = validated_search("sac", TINY_SAC, {**SEARCH, "storage_credentials": "study_db"})
    workers, start, studies, errors = 4, threading.Barrier(4), [], []

    def open_together() -> None:
        start.wait(timeout=60)
        try:
            studies.append(open_study("sac", tune, url))
        except Exception as error:  # noqa: BLE001 - every worker's failure is reported below
            errors.append(error)

    threads = [threading.Thread(target=open_together) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(studies) == workers and {study.study_name for study in studies} == {SEARCH["study_name"]}
    assert optuna.get_all_study_names(url) == [SEARCH["study_name"]]


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"], ids=["closed port", "unknown host"])
def test_an_unreachable_postgresql_is_one_line_naming_the_server_before_any_trial(host):
    """The study is opened before any trial (the command line's end to end: the test below)."""
    from rlpipe.pipelines.tuning import open_study, validated_search
    from tests.conftest import TINY_SAC

    port = free_port()  # nothing listens there
    tune = validated_search("sac", TINY_SAC, {**SEARCH, "storage_credentials": "study_db"})
    with pytest.raises(ConfigError) as raised:
        open_study("sac", tune, f"postgresql+psycopg://me:{PASSWORD}@{host}:{port}/studies")
    error = raised.value
    assert error.key == "sac_tune.storage_credentials"
    assert "\n" not in error.problem and f"the server {host}:{port} of" in error.problem, error.problem
    assert PASSWORD not in str(error) and ":***@" in error.problem, error.problem


@pytest.mark.slow  # a kedro process: the same error as the command line shows it
def test_an_unreachable_postgresql_stops_kedro_run_with_one_block_and_no_traceback(project):
    port = free_port()
    share_study(project, f"postgresql+psycopg://me:{PASSWORD}@127.0.0.1:{port}/studies", SEARCH)
    done = subprocess.run([str(KEDRO), "run", "--pipelines=sac_tune"], cwd=project, env=env(), capture_output=True,
                          text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert f"sac_tune.storage_credentials: cannot open the server 127.0.0.1:{port} of" in output, output[-3000:]
    assert "Traceback" not in output and PASSWORD not in output and "trial 0 started" not in output, output[-3000:]
