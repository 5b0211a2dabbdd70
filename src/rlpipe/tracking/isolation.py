"""The MLflow run of each pipeline run: its own run also when sessions share one process, with MLflow's system
metrics (``system/cpu_utilization_percentage``, memory, GPU when present) when its algorithm's
``tracking.system_metrics`` asks for them, and a tracking store prepared once under a lock."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from kedro.framework.hooks import hook_impl

from rlpipe.compat import stop_system_metrics_monitor

logger = logging.getLogger(__name__)


class MlflowRunIsolationHooks:
    """Each pipeline run gets its own MLflow run, also when sessions share one Python process; with the system
    metrics its algorithm's ``tracking.system_metrics`` asks for."""

    def __init__(self) -> None:
        self._saved_env: dict[str, str | None] | None = None  # mlflow's system-metrics settings before this run's
        self._run_id: str | None = None
        self._config_loader = None
        self._ipython_hidden = False  # see _hide_ipython

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook, which would otherwise adopt the leftover run
    def after_context_created(self, context) -> None:
        import mlflow

        while mlflow.active_run() is not None:  # a run left open by an earlier session in this process
            mlflow.end_run()
        self._config_loader = context.config_loader
        _prepare_store(context)

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any], catalog):
        """Around every other ``before_pipeline_run``: mlflow's system metrics are switched on (or off) for the
        run kedro-mlflow's hook starts, and the settings are restored once it has started (its monitor reads them
        when it starts), so kedro-mlflow's re-opening the run for each node starts no second monitor."""
        import mlflow

        self._run_id = None
        try:
            wanted = system_metrics_wanted(run_params, self._parameters(catalog))
            if wanted is not None:
                self._saved_env = {name: os.environ.get(name) for name in SYSTEM_METRICS_ENV}
                if wanted:
                    mlflow.enable_system_metrics_logging()
                    mlflow.set_system_metrics_sampling_interval(wanted)
                    mlflow.set_system_metrics_samples_before_logging(1)
                else:
                    mlflow.disable_system_metrics_logging()
        except Exception as error:  # the run goes on with mlflow's settings as they were
            logger.warning("could not set up MLflow system metrics: %s", error)
        self._hide_ipython()
        try:
            return (yield)
        finally:
            run = mlflow.active_run()
            self._run_id = run.info.run_id if run is not None else None
            self._restore_env()

    @hook_impl(trylast=True)  # after kedro-mlflow's: it re-opens the run per node and closes only one level
    def after_pipeline_run(self) -> None:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
        self._stop_system_metrics()
        self._unhide_ipython()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._stop_system_metrics()
        self._unhide_ipython()

    # mlflow asks whether it runs in a Jupyter or Databricks notebook by importing IPython, at the run's start and at
    # every logged model (0.45 s of a 10 s run). A process that has not imported IPython runs no IPython shell: for
    # the run, that import fails at once (a ``None`` in ``sys.modules``), which mlflow (like tqdm and matplotlib)
    # takes as "no notebook". A notebook or `kedro ipython` has IPython loaded and keeps mlflow's own checks.
    def _hide_ipython(self) -> None:
        self._ipython_hidden = "IPython" not in sys.modules
        if self._ipython_hidden:
            sys.modules["IPython"] = None

    def _unhide_ipython(self) -> None:
        if self._ipython_hidden and "IPython" in sys.modules and sys.modules["IPython"] is None:
            del sys.modules["IPython"]
        self._ipython_hidden = False

    def _stop_system_metrics(self) -> None:
        """The run's system-metrics monitor stopped (``end_run`` stops the one it knows of) and mlflow's settings
        as they were before the run, so a later run in this process samples only if it asks to."""
        self._restore_env()
        run_id, self._run_id = self._run_id, None
        try:
            if run_id:
                stop_system_metrics_monitor(run_id)
        except Exception as error:
            logger.debug("could not stop the system metrics monitor of run %s: %s", run_id, error)

    def _parameters(self, catalog) -> Callable[[str], Any]:
        """The raw parameter section of a name: the config loader's (runtime --params merged), else the catalog's."""
        def section(name: str) -> Any:
            if self._config_loader is not None:
                return self._config_loader["parameters"].get(name)
            return catalog.load(f"params:{name}") if f"params:{name}" in catalog else None

        return section

    def _restore_env(self) -> None:
        saved, self._saved_env = self._saved_env, None
        for name, value in (saved or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# What mlflow's enable_system_metrics_logging and set_system_metrics_* set (they are environment variables)
SYSTEM_METRICS_ENV = ("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL",
                      "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING")


def system_metrics_wanted(run_params: dict[str, Any], parameters: Callable[[str], Any]) -> float | bool | None:
    """The sampling interval (seconds) of the system metrics the run's algorithm sections (``parameters(name)``: the
    raw section, None if absent) ask for (the shortest, if the run has several), False if none asks, None if the
    run's pipelines are no algorithm's."""
    from rlpipe.rl import algorithm

    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    names = [names] if isinstance(names, str) else list(names)
    algorithms = []
    for name in names or [algorithm.DEFAULT]:
        algo = algorithm.DEFAULT if name == "__default__" else name.split("_")[0]
        if algo in algorithm.names() and algo not in algorithms:
            algorithms.append(algo)
    wanted = None
    for algo in algorithms:
        config = algorithm.load_config(algo, parameters(algo) or {}, None)  # no section: the defaults
        if config.tracking.system_metrics:
            interval = config.tracking.system_metrics_interval_s
            wanted = interval if not wanted else min(wanted, interval)
        elif wanted is None:
            wanted = False
    return wanted


def _prepare_store(context) -> None:
    """Create the tracking database and the experiment under a file lock, once.

    Two `kedro run` started together would otherwise both run the SQLite schema migrations and both create the
    experiment, and one of them fails. Later runs find both in place and only take the lock briefly.
    """
    import fcntl

    import mlflow

    try:  # the same files kedro-mlflow reads (its hook, which registers the pattern too, runs after this one)
        context.config_loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
        conf = context.config_loader["mlflow"]
    except Exception:  # no mlflow.yml: kedro-mlflow's defaults, nothing shared to prepare
        return
    uri = (conf.get("server") or {}).get("mlflow_tracking_uri")
    experiment = ((conf.get("tracking") or {}).get("experiment") or {})
    if not uri or not str(uri).startswith("sqlite:///") or not experiment.get("name"):
        return
    lock_path = Path(str(uri)[len("sqlite:///"):]).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = mlflow.MlflowClient(tracking_uri=str(uri))
        if client.get_experiment_by_name(experiment["name"]) is None:
            kwargs = experiment.get("create_experiment_kwargs") or {}
            client.create_experiment(experiment["name"], artifact_location=kwargs.get("artifact_location"),
                                     tags=kwargs.get("tags"))
