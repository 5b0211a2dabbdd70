"""Kedro hooks that put catalog artifacts into the MLflow run kedro-mlflow opened.

Catalog entries opt in through their metadata::

    metadata:
      rlpipe:
        mlflow: artifact   # log the saved file (this run's version) as an MLflow artifact
        mlflow: model      # log the saved policy directory as a pyfunc model (registered later, see below)

The policy model is registered in the MLflow model registry (``MlflowClient``, nothing printed) once the same
pipeline's ``eval_summary`` is saved, as its meta says: ``register: always``, or ``on_target`` when the
evaluation's ``return_mean`` reaches ``target_return``; never without a ``registered_model_name``. A run that
saves no ``eval_summary`` registers at its end with ``always`` only. The run's tags ``rlpipe.registered``
("true"/"false") and ``rlpipe.registered_version`` say what happened; a failure to register is a warning.

The run also gets MLflow's system metrics (``system/cpu_utilization_percentage``, memory, GPU when present) when its
algorithm's ``tracking.system_metrics`` is true, sampled every ``tracking.system_metrics_interval_s``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kedro.framework.hooks import hook_impl

from rlpipe.compat import dataset_saved_path, stop_system_metrics_monitor

logger = logging.getLogger(__name__)


class MlflowArtifactHooks:
    def __init__(self) -> None:
        self._catalog = None
        self._pending: dict[str, LoggedPolicy] = {}  # namespace -> its policy model, logged and awaiting its eval
        self._registered_runs: set[str] = set()

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog  # a new session: a new MLflow run
        self._pending, self._registered_runs = {}, set()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        import mlflow

        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        kind = ((getattr(dataset, "metadata", None) or {}).get("rlpipe") or {}).get("mlflow")
        folder = dataset_name.split(".")[0]
        if kind == "artifact":
            mlflow.log_artifact(dataset_saved_path(dataset), artifact_path=folder)
        elif kind == "model":
            self._log_model(folder, Path(dataset_saved_path(dataset)), data)
        elif kind:
            raise ValueError(f"catalog entry {dataset_name}: metadata rlpipe.mlflow must be 'artifact' or 'model', "
                             f"got {kind!r}")
        if dataset_name.rsplit(".", 1)[-1] == "eval_summary" and folder in self._pending:
            self._decide(self._pending.pop(folder), data)

    @hook_impl
    def after_pipeline_run(self) -> None:
        """A policy whose pipeline saved no evaluation: registered with ``register: always`` only."""
        pending, self._pending = self._pending, {}
        for policy in pending.values():
            self._decide(policy, None)

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._pending = {}  # a failed run registers nothing

    def _log_model(self, folder: str, path: Path, data: Any) -> None:
        from rlpipe.serving.mlflow_model import log_policy_model

        meta = (data.get("meta") if isinstance(data, dict) else None) or {}
        info = log_policy_model(path, name=f"{folder}_policy")
        policy = LoggedPolicy(info.model_uri, info.model_id, info.run_id, meta.get("registered_model_name"),
                              meta.get("register", "always"), meta.get("target_return"))
        if policy.registered_model_name:
            logger.info("logged policy model %s", policy.model_uri)
            self._pending[folder] = policy
        else:
            logger.info("logged policy model %s (not registered: no registered_model_name)", policy.model_uri)
        if policy.run_id not in self._registered_runs:  # another model of the run may be registered already
            _set_tags(policy.run_id, {"rlpipe.registered": "false"})

    def _decide(self, policy: LoggedPolicy, summary: Any) -> None:
        """Register ``policy`` if its rule says so given the eval ``summary`` (None: the run saved none)."""
        register, reason = registration_decision(policy.register, policy.target_return, summary)
        if not register:
            logger.info("policy model %s not registered as %r: %s", policy.model_uri, policy.registered_model_name,
                        reason)
            return
        try:
            from rlpipe.serving.mlflow_model import register_policy_model

            version = register_policy_model(policy.model_uri, policy.registered_model_name, run_id=policy.run_id,
                                            model_id=policy.model_id)
        except Exception as error:  # the run, its artifacts and the logged model stay as they are
            logger.warning("policy model %s was logged but not registered as %r: %s", policy.model_uri,
                           policy.registered_model_name, error)
            return
        self._registered_runs.add(policy.run_id)
        logger.info("registered policy model %s as '%s' version %s", policy.model_uri, version.name, version.version)
        _set_tags(policy.run_id, {"rlpipe.registered": "true", "rlpipe.registered_version": str(version.version)})


@dataclass(frozen=True)
class LoggedPolicy:
    """A policy model logged into a run (what registering it needs) and its registration rule."""

    model_uri: str
    model_id: str | None
    run_id: str
    registered_model_name: str | None
    register: str  # "always" | "on_target"
    target_return: float | None


def registration_decision(register: str, target_return: float | None, summary: Any) -> tuple[bool, str]:
    """Whether a logged policy is registered under rule ``register`` given the eval ``summary`` (a dict with
    ``return_mean``, or None when the run evaluated nothing), and if not, why."""
    if register == "always":
        return True, ""
    if register != "on_target":
        return False, f"unknown tracking.register {register!r}"
    if summary is None:
        return False, "tracking.register is on_target but the run saved no evaluation summary"
    if target_return is None:
        return False, "tracking.register is on_target but no target_return is set"
    mean = summary.get("return_mean") if isinstance(summary, dict) else None
    if mean is None:
        return False, "the evaluation summary has no return_mean"
    if not float(mean) >= float(target_return):  # NaN never reaches the target
        return False, f"eval mean return {float(mean):.2f} is below the target {float(target_return):.2f}"
    return True, ""


def _set_tags(run_id: str, tags: dict[str, str]) -> None:
    import mlflow

    try:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except Exception as error:
        logger.warning("could not tag MLflow run %s with %s: %s", run_id, tags, error)


class MlflowConfigParamsHooks:
    """Log the *validated* config (defaults included) as params, not only the keys the YAML happened to set."""

    @hook_impl
    def after_node_run(self, node, outputs: dict[str, Any]) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        for name, value in outputs.items():
            if name.split(".")[-1] != "config" or not hasattr(value, "model_dump"):  # an rlpipe.rl.config.Config
                continue
            from rlpipe.rl.config import dotted, to_dict

            prefix = name.rsplit(".", 1)[0] if "." in name else ""
            flat = {k: str(v)[:6000] for k, v in dotted(to_dict(value), f"{prefix}." if prefix else "").items()}
            logged = mlflow.MlflowClient().get_run(run.info.run_id).data.params
            mlflow.log_params({k: v for k, v in flat.items() if k not in logged})


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
