"""Process-wide runtime setup for every Kedro run: the persistent compilation cache, and joining the other
processes of a multi-process run (JAX's distributed runtime) before anything touches a JAX backend."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from rlpipe.compat import context_hook_manager

logger = logging.getLogger(__name__)

# Plugins whose hooks write files of their own (an MLflow run, kedro-viz's run statistics): process 0's alone.
PRIMARY_ONLY_PLUGINS = ("kedro_mlflow", "kedro_viz")


class ConfigCheckHooks:
    @hook_impl(tryfirst=True)  # registered last: the first hook of all, before JAX, the envs or MLflow's store
    def after_context_created(self, context) -> None:
        """Every parameter section the project has (``distributed``, ``evaluation`` and each algorithm's) checked
        before anything heavy is loaded: a bad key or value stops the run here with a ``ConfigError`` naming it.
        The rules that need the environment or the device count follow in each pipeline's ``load_config``."""
        from rlpipe.configuration import check_parameters

        check_parameters(context.config_loader["parameters"])  # runtime --params merged


class JaxRuntimeHooks:
    @hook_impl(tryfirst=True)  # before kedro-mlflow's, kedro-viz's and the project's other hooks
    def after_context_created(self, context) -> None:
        """Compiled XLA programs are cached on disk, so a second run skips most compilation (where, and how to turn
        it off: ``rlpipe.rl.compilation_cache``); a multi-process run joins its processes (``distributed``
        parameters, or the environment: see ``rlpipe.rl.mesh.initialize``)."""
        from rlpipe.rl import mesh
        from rlpipe.rl.compilation_cache import cache_dir_for, use_compilation_cache
        from rlpipe.rl.config import DistributedConfig, parse

        use_compilation_cache(cache_dir_for(context.project_path))

        # the config loader's parameters (runtime --params merged), not context.params: that validates them
        # against the pipelines, whose import brings in gymnax, which starts a JAX backend before it may be joined
        params = context.config_loader["parameters"]
        settings = parse(DistributedConfig, params.get("distributed"), "distributed")
        if mesh.initialize(settings) and not mesh.is_primary():
            _unregister_primary_only_plugins(context)


def _unregister_primary_only_plugins(context) -> None:
    manager = context_hook_manager(context)  # the session's plugin manager
    if manager is None:
        return
    for plugin in list(manager.get_plugins()):
        if type(plugin).__module__.split(".")[0] in PRIMARY_ONLY_PLUGINS:
            manager.unregister(plugin)


class LineageHooks:
    """MLflow tags that tie a run to the stored agents it came from: ``rlpipe.parent_agent`` for a run started
    with ``train.init_from``, ``rlpipe.evaluated_agent`` for an evaluation pipeline's run."""

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        import sys

        mlflow = sys.modules.get("mlflow")
        if mlflow is None or mlflow.active_run() is None:
            return
        for name, value in outputs.items():
            namespace, _, entry = name.rpartition(".")
            if entry == "lineage" and value:
                mlflow.set_tags({"rlpipe.parent_agent": f"{value['parent_algorithm']}.agent@{value['parent_version']}",
                                 "rlpipe.parent_agent_env_steps": str(value["parent_env_steps"])})
            elif entry == "agent_info" and isinstance(value, dict):
                mlflow.set_tags({"rlpipe.evaluated_agent": f"{value['algorithm']}.agent@{value['agent_version']}"})
