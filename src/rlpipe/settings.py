"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from rlpipe.hooks import JaxRuntimeHooks

HOOKS = (JaxRuntimeHooks(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
