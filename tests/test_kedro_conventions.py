"""Kedro's conventions as a Kedro user expects them: parameters merge softly across config environments, a mistyped
pipeline name is one line naming the valid ones, kedro-viz's data layers have no cycle, and secrets (a search's
storage URL) come from credentials.yml, never a parameter, never MLflow."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlpipe import configuration
from rlpipe.rl.config import dotted
from rlpipe.rl.errors import ConfigError


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def _session_parameters(project: Path, env: str | None) -> dict:
    """The parameters a ``kedro run --env <env>`` session loads (the project's settings: CONFIG_LOADER_ARGS)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        return session.load_context().config_loader["parameters"]


def _early_check_parameters(env: str | None) -> dict:
    """The parameters the check before ``kedro run`` starts loads for ``--env <env>`` (cwd: the project)."""
    options = configuration._run_options(["--env", env] if env else [])
    assert options is not None
    return configuration._run_loader(options)["parameters"]


def test_a_config_env_with_one_key_changes_only_that_key_in_the_session_and_the_early_check(project):
    _write(project / "conf" / "one" / "parameters_sac.yml", {"sac": {"train": {"total_env_steps": 7777}}})
    base = dotted(_session_parameters(project, None))
    for loaded in (_session_parameters(project, "one"), _early_check_parameters("one")):
        changed = dotted(loaded)
        assert set(changed) == set(base)
        assert {key for key in base if base[key] != changed[key]} == {"sac.train.total_env_steps"}
        assert changed["sac.train.total_env_steps"] == 7777
    assert base["sac.train.total_env_steps"] != 7777


def test_the_config_loader_reads_each_key_once_and_hands_out_copies(tmp_path):
    conf = tmp_path / "conf"
    _write(conf / "base" / "parameters.yml", {"sac": {"seed": 1}})
    (conf / "local").mkdir()
    loader = configuration.OnceConfigLoader(conf_source=str(conf), **configuration.CONFIG_LOADER_ARGS)
    first = loader["parameters"]
    first["sac"]["seed"] = 99  # a caller changing its copy changes nobody else's
    _write(conf / "base" / "parameters.yml", {"sac": {"seed": 2}})  # the files are read once per loader (session)
    assert loader["parameters"] == {"sac": {"seed": 1}}
    fresh = configuration.OnceConfigLoader(conf_source=str(conf), **configuration.CONFIG_LOADER_ARGS)
    assert fresh["parameters"] == {"sac": {"seed": 2}}  # the next session's loader reads them again
    loader["credentials"] = {"db": {"con": "sqlite://"}}  # a key set explicitly is the loader's own, as in Kedro
    assert loader["credentials"] == {"db": {"con": "sqlite://"}}


def test_a_bad_key_in_a_config_env_is_a_config_error_of_the_early_check(project):
    _write(project / "conf" / "bad" / "parameters_sac.yml", {"sac": {"train": {"learning_rat": 0.1}}})
    error = configuration.run_config_error(["kedro", "run", "--pipelines=sac", "--env", "bad"])
    assert isinstance(error, ConfigError) and error.key == "sac.train.learning_rat"


def test_the_pipeline_names_known_before_kedro_starts_are_the_registered_ones():
    from rlpipe.pipeline_registry import register_pipelines

    assert configuration.pipeline_names() == set(register_pipelines())


def test_processes_other_than_0_run_each_pipeline_up_to_its_training_nodes(monkeypatch):
    """What a process other than 0 of a multi-process run runs: every node its training nodes need, and no report,
    export or evaluation of process 0's; a chain up to its last stage's training node, with what feeds it."""
    from rlpipe import pipeline_registry
    from rlpipe.rl import mesh

    everything = pipeline_registry.register_pipelines()
    monkeypatch.setattr(mesh, "is_primary", lambda: False)
    others = pipeline_registry.register_pipelines()
    names = lambda pipeline: {node.name for node in pipeline.nodes}  # noqa: E731
    assert names(others["sac"]) == names(everything["sac"].to_nodes("sac.train"))
    assert "sac.evaluate" in names(everything["sac"]) and "sac.evaluate" not in names(others["sac"])
    chain, whole = names(others["imitation_chain"]), names(everything["imitation_chain"])
    assert {"sac.train", "ppo_imitation.train"} <= chain
    assert {n for n in whole - chain if n.startswith("ppo_imitation.")} >= {"ppo_imitation.evaluate"}
    assert not [n for n in chain if n.split(".")[-1] in ("evaluate", "export_policy", "plot_learning_curve")], chain
    assert names(others["sac_eval"]) == names(everything["sac_eval"])  # nothing trains there: the whole pipeline


def test_a_mistyped_pipeline_name_is_one_line_naming_the_valid_ones_before_jax_loads(project):
    from rlpipe.pipeline_registry import register_pipelines

    # PYTHONPROFILEIMPORTTIME: the process lists every module it imports (on stderr, "import time: ..." lines)
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    result = subprocess.run([str(Path(sys.executable).with_name("kedro")), "run", "--pipelines=sacc"], cwd=project, capture_output=True, text=True,
                            timeout=120, env=env)
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and not line.startswith("import time:")]
    assert result.returncode == 2
    assert len(said) == 1, said
    assert "'sacc'" in said[0] and "did you mean 'sac'?" in said[0]
    listed = said[0].rsplit("the pipelines are: ", 1)[1].split(", ")
    assert set(listed) == set(register_pipelines()) - {"__default__"}
    assert imports and not [line for line in imports if line.rsplit("|", 1)[-1].strip().split(".")[0] == "jax"]


def test_every_pipeline_has_its_data_layers_in_an_order_kedro_viz_can_draw(project, caplog):
    from kedro_viz.data_access.managers import DataAccessManager
    from kedro_viz.integrations.kedro.data_loader import load_data
    from kedro_viz.server import populate_data

    catalog, pipelines, extras = load_data(project)
    manager = DataAccessManager()
    populate_data(manager, catalog, pipelines, extras)
    with caplog.at_level(logging.WARNING, logger="kedro_viz"):
        layers = {name: manager.get_sorted_layers_for_registered_pipeline(name) for name in pipelines}
    assert "circular dependency" not in caplog.text
    assert not [name for name, sorted_layers in layers.items() if not sorted_layers]  # [] is kedro-viz's cycle answer
    assert {"raw", "intermediate", "primary", "models", "reporting"} <= set(layers["sac"])


SECRET = "s3cr3t-Zq81x"  # stands for a password: a SQLite URL has none, so the secret is the database's file name
TINY_SEARCH = {
    "study_name": "tiny", "n_trials": 1, "num_seeds": 1, "heartbeat_interval_s": 1, "grace_period_s": 3,
    "base": {"train": {"total_env_steps": 128, "eval_every_env_steps": 0, "log_every_env_steps": 64}},
    "space": {"train.learning_rate": {"type": "log_float", "low": 1e-4, "high": 3e-3}},
}


def _search_project(project: Path, entry: str, credentials: dict | None) -> None:
    from tests.conftest import TINY_SAC

    local = project / "conf" / "local"
    _write(local / "parameters_sac.yml", {"sac": TINY_SAC})
    _write(local / "parameters_sac_tune.yml", {"sac_tune": {**TINY_SEARCH, "storage_credentials": entry}})
    if credentials is not None:
        _write(local / "credentials.yml", credentials)


@pytest.mark.slow
def test_a_search_storage_from_the_credentials_is_used_and_never_reaches_mlflow(project):
    pytest.importorskip("optuna")
    from tests.support import run_pipeline

    database = project / "data" / "09_tuning" / f"{SECRET}.db"
    database.parent.mkdir(parents=True)
    _search_project(project, "study_db", {"study_db": {"url": f"sqlite:///{database}"}})
    run_pipeline(project, "sac_tune")
    assert database.is_file()  # the study lives where the credentials say
    assert not (project / "data" / "09_tuning" / "sac_tune.db").exists()
    store = [project / "mlflow.db", *(p for p in (project / "mlruns").rglob("*") if p.is_file())]
    assert len(store) > 2  # the database and the run's artifacts
    assert [p for p in store if SECRET.encode() in p.read_bytes()] == []
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs and all(SECRET not in repr((r.data.params, r.data.tags)) for r in runs)
    assert any(r.data.params.get("sac_tune.storage_credentials") == "study_db" for r in runs)


@pytest.mark.parametrize("credentials,phrase", [
    (None, "'study_db' is not an entry of conf/local/credentials.yml (its entries: none)"),
    ({"other_db": {"url": "sqlite:///x.db"}}, "'study_db' is not an entry of conf/local/credentials.yml (its "
                                              "entries: other_db)"),
    ({"study_db": {"username": "me"}}, "the entry 'study_db' of conf/local/credentials.yml has no `url`"),
], ids=["no credentials file", "no such entry", "an entry without url"])
def test_a_credentials_entry_that_does_not_resolve_is_a_config_error_before_kedro_starts(project, credentials,
                                                                                          phrase):
    _search_project(project, "study_db", credentials)
    error = configuration.run_config_error(["kedro", "run", "--pipelines=sac_tune"])
    assert isinstance(error, ConfigError) and error.key == "sac_tune.storage_credentials"
    assert phrase in error.problem


def test_a_credentials_entry_that_does_not_resolve_stops_the_session_before_any_work(project):
    from tests.support import run_pipeline

    _search_project(project, "study_db", {"other_db": {"url": "sqlite:///x.db"}})
    with pytest.raises(Exception) as raised:
        run_pipeline(project, "sac")  # any run: every parameter section is checked first
    from rlpipe.console import config_error_in

    error = config_error_in(raised.value)
    assert error is not None and error.key == "sac_tune.storage_credentials"
    assert "conf/local/credentials.yml" in error.problem
    assert not (project / "data").exists() or not any((project / "data").rglob("*.parquet"))


def test_a_storage_url_with_a_password_is_refused_as_a_parameter_and_hidden_in_messages():
    from rlpipe.rl import study_storage, tuning

    with pytest.raises(ConfigError) as error:
        tuning.load_tune_config({"storage": f"postgresql://me:{SECRET}@db.example/optuna"}, "sac_tune")
    assert error.value.key == "sac_tune.storage" and "credentials.yml" in error.value.problem
    assert SECRET not in str(error.value)
    assert study_storage.hide_password(f"postgresql://me:{SECRET}@db.example/optuna") == \
        "postgresql://me:***@db.example/optuna"
    assert tuning.load_tune_config({"storage": "sqlite:////tmp/study.db"}, "sac_tune").storage == \
        "sqlite:////tmp/study.db"


@pytest.mark.parametrize("pipeline", ["ppo_tune", "ppo"])
def test_a_pipeline_whose_parameter_section_no_file_has_is_a_config_error_naming_it(project, pipeline):
    (project / "conf" / "base" / f"parameters_{pipeline}.yml").unlink()
    error = configuration.run_config_error(["kedro", "run", f"--pipelines={pipeline}"])
    assert isinstance(error, ConfigError) and error.key == pipeline
    assert f"needs a `{pipeline}:` section" in error.problem and f"parameters_{pipeline}.yml" in error.problem
    assert configuration.run_config_error(["kedro", "run", "--pipelines=sac_tune"]) is None  # present: no error
