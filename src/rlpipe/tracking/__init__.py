"""MLflow for every Kedro run: catalog artifacts and the policy model into the run kedro-mlflow opened (here), the
run's own MLflow run and system metrics (``isolation``), its name, tags and the resumed run it continues
(``conventions``), the training history while it trains (``live``) and its end as KILLED when it is stopped
(``ending``).

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
A registered version with an evaluation then contends for the ``@champion`` alias on the held-out scenarios it was
evaluated on (``rlpipe.serving.champion``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from rlpipe.compat import dataset_saved_path
from rlpipe.tracking.conventions import MlflowConfigParamsHooks, MlflowRunConventionsHooks
from rlpipe.tracking.ending import MlflowRunEndHooks
from rlpipe.tracking.isolation import SYSTEM_METRICS_ENV, MlflowRunIsolationHooks, system_metrics_wanted

__all__ = ["SYSTEM_METRICS_ENV", "LoggedPolicy", "MlflowArtifactHooks", "MlflowConfigParamsHooks",
           "MlflowRunConventionsHooks", "MlflowRunEndHooks", "MlflowRunIsolationHooks", "registration_decision",
           "system_metrics_wanted"]

logger = logging.getLogger(__name__)


class MlflowArtifactHooks:
    def __init__(self) -> None:
        self._catalog = None
        self._pending: dict[str, LoggedPolicy] = {}  # namespace -> its policy model, logged and awaiting its eval
        self._registered_runs: set[str] = set()
        self._scenarios: dict[str, tuple[str, int]] = {}  # namespace -> its eval scenarios' fingerprint and count

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog  # a new session: a new MLflow run
        self._pending, self._registered_runs, self._scenarios = {}, set(), {}

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        import mlflow

        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        kind = ((getattr(dataset, "metadata", None) or {}).get("rlpipe") or {}).get("mlflow")
        folder = dataset_name.split(".")[0]
        if dataset_name.rsplit(".", 1)[-1] == "scenarios_eval" and hasattr(data, "columns"):
            from rlpipe.serving.champion import scenario_fingerprint

            self._scenarios[folder] = (scenario_fingerprint(data), len(data))
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
                              meta.get("register", "always"), meta.get("target_return"),
                              *self._scenarios.get(folder, (None, None)))
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
        _set_tags(policy.run_id, {"rlpipe.registered": "true", "rlpipe.registered_version": str(version.version)})
        logger.info("registered policy model %s as '%s' version %s; %s", policy.model_uri, version.name,
                    version.version, _contend(policy, str(version.version), summary))


@dataclass(frozen=True)
class LoggedPolicy:
    """A policy model logged into a run (what registering it needs) and its registration rule."""

    model_uri: str
    model_id: str | None
    run_id: str
    registered_model_name: str | None
    register: str  # "always" | "on_target"
    target_return: float | None
    scenarios: str | None = None  # the fingerprint of the held-out scenarios it is evaluated on
    num_scenarios: int | None = None


def _contend(policy: LoggedPolicy, version: str, summary: Any) -> str:
    """The newly registered ``version`` of ``policy`` against the ``@champion`` (none without an evaluation): what
    came of it, for the registration's log line."""
    mean = summary.get("return_mean") if isinstance(summary, dict) else None
    if mean is None:
        return "it does not contend for @champion: the run saved no evaluation"
    try:
        from rlpipe.serving.champion import contend

        contest = contend(policy.registered_model_name, version, float(mean), policy.scenarios,
                          policy.num_scenarios, run_id=policy.run_id)
    except Exception as error:  # noqa: BLE001 - the version stays registered; the alias stays where it was
        logger.warning("'%s' version %s could not contend for @champion: %s", policy.registered_model_name, version,
                       error)
        return "@champion unchanged"
    return f"it {'takes' if contest.promoted else 'does not take'} @champion: {contest.reason}"


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
