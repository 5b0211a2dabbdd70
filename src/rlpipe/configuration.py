"""How the project's parameters are loaded and checked, and the check ``kedro run`` does before Kedro starts.

``CONFIG_LOADER_ARGS`` are the project's Kedro config-loader settings (``settings.py`` uses them). ``check_parameters``
checks every parameter section the project has; the ``ConfigCheckHooks`` hook runs it on the parameters Kedro
loaded. ``run_config_error`` runs it earlier, for the ``kedro.init`` plugin hook (``rlpipe.console.init``): on a
``kedro run`` command line it loads the same parameters (the same conf source, environment and ``--params``) with
Kedro's own loader and returns the error of a bad key or value; the console prints it and exits with status 2 in
well under a second, before Kedro loads its plugins (kedro-mlflow's CLI imports MLflow, about a second here).
Anything it cannot follow (``--config`` files, options it does not parse, a loader error) it leaves to the run,
which checks again and says what is wrong. This module shows nothing itself: it imports neither the console nor
the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _project_root() -> str:
    """The Kedro project root, also when the cwd is a subfolder (a notebook in notebooks/)."""
    from kedro.utils import find_kedro_project

    return str(find_kedro_project(Path.cwd()) or Path.cwd())


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"project_root": _project_root},
}


def check_parameters(params: dict[str, Any]) -> None:
    """Every parameter section the project has (``distributed``, ``evaluation`` and each algorithm's) checked with
    the rules that need neither the environment nor the device count: a ``ConfigError`` names a bad key or value."""
    from rlpipe.rl import algorithm
    from rlpipe.rl.config import CompareConfig, DemonstrationsConfig, DistributedConfig, EvaluationConfig, parse

    parse(DistributedConfig, params.get("distributed"), "distributed")
    parse(EvaluationConfig, params.get("evaluation"), "evaluation")
    parse(CompareConfig, params.get("compare"), "compare")
    parse(DemonstrationsConfig, params.get("demonstrations"), "demonstrations")
    for name, plugin in algorithm.REGISTRY.items():  # an algorithm's config under another pipeline's own name
        for namespace in plugin.namespaces:
            if namespace in params:
                algorithm.load_config(name, params[namespace], None, namespace)
    for name in algorithm.names():
        if name in params:
            algorithm.load_config(name, params[name], None)
        if f"{name}_tune" in params:  # a search's own keys and values (its space meets the algorithm's config
            from rlpipe.rl import tuning  # in the search pipeline's first node: other runs need not fit it)

            tuning.load_tune_config(params[f"{name}_tune"], f"{name}_tune")


def _run_parameters(args: list[str]) -> dict[str, Any] | None:
    """The parameters ``kedro run <args>`` would load, or None where this cannot tell for sure."""
    import click
    from kedro.framework.cli.project import run as kedro_run
    from kedro.utils import find_kedro_project

    root = find_kedro_project(Path.cwd())
    if root is None:
        return None
    try:
        with kedro_run.make_context("run", list(args)) as ctx:
            options = dict(ctx.params)
    except (click.exceptions.ClickException, click.exceptions.Exit, SystemExit):
        return None  # a usage error: Kedro's own message says it
    if options.get("config"):
        return None  # run options from a file: left to Kedro
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(conf_source=options.get("conf_source") or str(Path(root) / "conf"),
                               env=options.get("env"), runtime_params=options.get("params") or {},
                               **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def run_config_error(argv: list[str]) -> Any:
    """On ``kedro run ...`` (not verbose, not help): the ``ConfigError`` its parameters would stop the run with, or
    None (also when this cannot tell for sure: the run checks again). What the user sees of it, and the exit, is
    the console's (``rlpipe.console.init``): this module shows nothing."""
    if len(argv) < 2 or argv[1] != "run" or any(a in ("-v", "--verbose", "-h", "--help") for a in argv[2:]):
        return None
    from rlpipe.rl.errors import ConfigError

    try:
        params = _run_parameters(list(argv[2:]))
        if params is not None:
            check_parameters(params)
    except ConfigError as error:
        return error
    except Exception:  # noqa: BLE001 - anything else is the run's to report, with Kedro's context
        return None
    return None
