"""What an MLflow user looks for on a run: a name that says what ran, tags to filter on, the validated config as
params, the run a resumed run continues, and the training history while it trains.

Names: ``<namespace>-<env>-s<seed>-<version>`` (``sac-Pendulum-v1-s0-2026-12-03T16.52.09.123Z``; a multi-seed run
``s0-4``), the version being the run's catalog version (its Kedro session id); a pipeline without a config
(``compare``, a search) ``<pipeline>-<version>``. Tags: ``rlpipe.purpose`` (train, eval, tune or compare: one
experiment holds them all, the UI filters on ``tags.rlpipe.purpose = 'eval'``), ``rlpipe.pipeline``,
``rlpipe.algorithm``, ``rlpipe.env``, ``rlpipe.seeds``, ``rlpipe.agent_version`` (the agent a training run stores, or
the one an evaluation evaluates), ``rlpipe.git_commit`` when the project is a git checkout, and for a resumed run
``rlpipe.resumed_from_run``: the MLflow run that trained in the same checkpoint folder before.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

PURPOSES = {"_eval": "eval", "_tune": "tune"}  # pipeline name suffix -> purpose; "compare" is its own; else train


def purpose_of(pipeline_names: list[str]) -> str:
    """The purpose of a run of ``pipeline_names``: train, eval, tune or compare."""
    for name in pipeline_names:
        if name == "compare":
            return "compare"
        for suffix, purpose in PURPOSES.items():
            if name.endswith(suffix):
                return purpose
    return "train"


def run_name(namespace: str, env_id: str, seeds: list[int], version: str) -> str:
    """``<namespace>-<env>-s<seed>-<version>``; several seeds as ``s<first>-<last>``."""
    which = f"s{seeds[0]}" if len(seeds) == 1 else f"s{seeds[0]}-{seeds[-1]}"
    return f"{namespace}-{env_id}-{which}-{version}"


def git_commit(path: Any) -> str | None:
    """The commit checked out at ``path``, or None (not a git checkout, no git installed)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=path, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _active_run() -> Any:
    mlflow = sys.modules.get("mlflow")
    return mlflow.active_run() if mlflow is not None else None


class MlflowRunConventionsHooks:
    """Names and tags the run kedro-mlflow opened, links a resumed run to the one it continues, and opens the live
    training history for each train node (``rlpipe.tracking.live``)."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._purpose = "train"
        self._named = False  # named after its first algorithm config (a chain of pipelines has several)

    @hook_impl(trylast=True)  # after kedro-mlflow's, which starts the run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._named = False
        run = _active_run()
        if run is None:
            return
        names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or ["__default__"]
        names = [names] if isinstance(names, str) else list(names)
        self._version, self._purpose = run_params.get("run_id"), purpose_of(names)
        tags = {"rlpipe.pipeline": ",".join(names), "rlpipe.purpose": self._purpose}
        commit = git_commit(run_params.get("project_path"))
        if commit:
            tags.update({"rlpipe.git_commit": commit, "mlflow.source.git.commit": commit})
        self._tag(run.info.run_id, tags, name=f"{'+'.join(names)}-{self._version}")

    @hook_impl
    def before_node_run(self, node) -> None:
        run = _active_run()
        train = [name for name in node.outputs if name.rpartition(".")[2] == "training_history"]
        if run is not None and train:
            from rlpipe.tracking import live

            live.begin(run.info.run_id, train[0].rpartition(".")[0] or node.namespace or "")

    @hook_impl
    def after_node_run(self, node, outputs: dict[str, Any]) -> None:
        from rlpipe.tracking import live

        live.end()
        run = _active_run()
        if run is None:
            return
        for name, value in outputs.items():
            namespace, _, entry = name.rpartition(".")
            if entry == "config" and hasattr(value, "model_dump") and not self._named:
                self._name_after_config(run.info.run_id, namespace, value)
            elif entry == "resume" and getattr(value, "resuming", False):
                self._link_resumed(run, value.checkpoint.parent.name)
            elif entry == "agent_info" and isinstance(value, dict) and value.get("agent_version"):
                self._tag(run.info.run_id, {"rlpipe.agent_version": str(value["agent_version"])})

    @hook_impl
    def on_node_error(self) -> None:
        from rlpipe.tracking import live

        live.end()

    def _name_after_config(self, run_id: str, namespace: str, config: Any) -> None:
        from rlpipe.rl.algorithm import for_config
        from rlpipe.rl.seeds import run_seeds

        seeds = run_seeds(config)
        tags = {"rlpipe.algorithm": for_config(config).name, "rlpipe.env": config.env.id,
                "rlpipe.seeds": ",".join(str(s) for s in seeds)}
        if self._purpose == "train":
            tags["rlpipe.agent_version"] = str(self._version)  # the catalog version of <namespace>.agent
        self._named = True
        self._tag(run_id, tags, name=run_name(namespace or tags["rlpipe.algorithm"], config.env.id, seeds,
                                              str(self._version)))

    def _link_resumed(self, run: Any, folder: str) -> None:
        """Tag the run with the checkpoint folder it continues and the latest other run that trained there."""
        import mlflow

        from rlpipe.tracking.live import FOLDER_TAG

        try:
            client = mlflow.MlflowClient()
            earlier = client.search_runs([run.info.experiment_id], f"tags.`{FOLDER_TAG}` = '{folder}'",
                                         order_by=["attributes.start_time DESC"], max_results=5)
            previous = [r for r in earlier if r.info.run_id != run.info.run_id]
        except Exception as error:
            logger.warning("could not look up the MLflow run that trained in %s before: %s", folder, error)
            previous = []
        tags = {FOLDER_TAG: folder}
        if previous:
            tags["rlpipe.resumed_from_run"] = previous[0].info.run_id
        self._tag(run.info.run_id, tags)

    @staticmethod
    def _tag(run_id: str, tags: dict[str, str], name: str | None = None) -> None:
        import mlflow

        try:
            client = mlflow.MlflowClient()
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            if name:
                client.update_run(run_id, name=name)
        except Exception as error:  # the run goes on unnamed or untagged
            logger.warning("could not name or tag MLflow run %s: %s", run_id, error)


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
