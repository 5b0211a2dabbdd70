"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from pathlib import Path

from rlpipe import configuration
from rlpipe.catalog import ProcessAwareCatalog
from rlpipe.console import ConsoleHooks
from rlpipe.hooks import ConfigCheckHooks, JaxRuntimeHooks, LineageHooks
from rlpipe.tracking import (MlflowArtifactHooks, MlflowConfigParamsHooks, MlflowRunConventionsHooks, MlflowRunEndHooks,
                             MlflowRunIsolationHooks)
from rlpipe.versions import use_unique_run_versions


# Runs started in the same millisecond (a job array, `&` in a shell loop) still get distinct versions.
use_unique_run_versions(Path(configuration._project_root()) / "data")

# Registered last, called first (pluggy is LIFO): ConfigCheckHooks stops a bad config before anything heavy is loaded,
# and SearchStorageHooks a credentials entry the parameters name that does not resolve; JaxRuntimeHooks then joins the
# processes of a multi-process run before any other hook asks which process this is.
HOOKS = (ConsoleHooks(), LineageHooks(), MlflowRunIsolationHooks(), MlflowConfigParamsHooks(), MlflowArtifactHooks(),
         MlflowRunConventionsHooks(), MlflowRunEndHooks(), JaxRuntimeHooks(), configuration.SearchStorageHooks(),
         ConfigCheckHooks())

# In a multi-process run, process 0 alone writes catalog artifacts; the others keep their outputs in memory.
DATA_CATALOG_CLASS = ProcessAwareCatalog

CONFIG_LOADER_CLASS = configuration.OnceConfigLoader  # each config key read once per session
CONFIG_LOADER_ARGS = configuration.CONFIG_LOADER_ARGS  # shared with the early check of `kedro run` (see there)
