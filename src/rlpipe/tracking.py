"""Kedro hooks that put catalog artifacts into the MLflow run kedro-mlflow opened.

Catalog entries opt in through their metadata::

    metadata:
      rlpipe:
        mlflow: artifact   # log the saved file (this run's version) as an MLflow artifact
        mlflow: model      # log the saved policy directory as a pyfunc model and register it
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


class MlflowArtifactHooks:
    def __init__(self) -> None:
        self._catalog = None

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        import mlflow

        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        kind = ((getattr(dataset, "metadata", None) or {}).get("rlpipe") or {}).get("mlflow")
        if not kind:
            return
        path = Path(_saved_path(dataset))
        folder = dataset_name.split(".")[0]
        if kind == "artifact":
            mlflow.log_artifact(str(path), artifact_path=folder)
        elif kind == "model":
            from rlpipe.serving.mlflow_model import log_policy_model

            registered = (data.get("meta") or {}).get("registered_model_name")
            info = log_policy_model(path, registered, name=f"{folder}_policy")
            logger.info("logged policy model %s%s", info.model_uri,
                        f" (registered as {registered!r})" if registered else "")
        else:
            raise ValueError(f"catalog entry {dataset_name}: metadata rlpipe.mlflow must be 'artifact' or 'model', "
                             f"got {kind!r}")


class MlflowConfigParamsHooks:
    """Log the *validated* config (defaults included) as params, not only the keys the YAML happened to set."""

    @hook_impl
    def after_node_run(self, node, outputs: dict[str, Any]) -> None:
        import dataclasses

        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        for name, value in outputs.items():
            if name.split(".")[-1] != "config" or not dataclasses.is_dataclass(value):
                continue
            from rlpipe.rl.config import to_dict

            prefix = name.rsplit(".", 1)[0] if "." in name else ""
            flat = _flatten(to_dict(value), prefix)
            logged = mlflow.MlflowClient().get_run(run.info.run_id).data.params
            mlflow.log_params({k: v for k, v in flat.items() if k not in logged})


def _flatten(tree: dict[str, Any], prefix: str) -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name))
        else:
            out[name] = str(value)[:6000]
    return out


class MlflowRunIsolationHooks:
    """Each pipeline run gets its own MLflow run, also when sessions share one Python process."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook, which would otherwise adopt the leftover run
    def after_context_created(self, context) -> None:
        import mlflow

        while mlflow.active_run() is not None:  # a run left open by an earlier session in this process
            mlflow.end_run()
        _prepare_store(context)

    @hook_impl(trylast=True)  # after kedro-mlflow's: it re-opens the run per node and closes only one level
    def after_pipeline_run(self) -> None:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()


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


def _saved_path(dataset) -> str:
    """Where a file dataset just saved: this session's version of a versioned dataset, else its filepath."""
    version = dataset.resolve_save_version() if getattr(dataset, "_version", None) else None
    return str(dataset._get_versioned_path(version) if version else dataset._filepath)
