"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from pathlib import Path

from kedro.utils import find_kedro_project

from rlpipe.hooks import JaxRuntimeHooks
from rlpipe.tracking import MlflowArtifactHooks, MlflowConfigParamsHooks, MlflowRunIsolationHooks


def _project_root() -> str:
    """The Kedro project root, also when the cwd is a subfolder (a notebook in notebooks/)."""
    return str(find_kedro_project(Path.cwd()) or Path.cwd())


HOOKS = (JaxRuntimeHooks(), MlflowRunIsolationHooks(), MlflowConfigParamsHooks(), MlflowArtifactHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"project_root": _project_root},
}
