"""How the project's parameters are loaded and checked, and the check ``kedro run`` does before Kedro starts.

``OnceConfigLoader`` and ``CONFIG_LOADER_ARGS`` are the project's Kedro config loader and its settings (``settings.py``
uses them). ``check_parameters`` checks every parameter section the project has; the ``ConfigCheckHooks`` hook runs it
on the parameters Kedro loaded. ``run_config_error`` runs it earlier, for the ``kedro.init`` plugin hook
(``rlpipe.console.init``): on a ``kedro run`` command line it loads the same parameters (the same conf source,
environment and ``--params``) with the project's loader and returns the error of a bad key or value; the console prints
it and exits with status 2 in well under a second, before Kedro loads its plugins (kedro-mlflow's CLI imports MLflow,
about a second here). Anything it cannot follow (``--config`` files, options it does not parse, a loader error) it
leaves to the run, which checks again and says what is wrong. The same check resolves the credentials a search's
parameters name (``search_storage_urls``); ``SearchStorageHooks`` hands the URL to the search at run time.
``pipeline_names`` and ``run_pipeline_error`` say which pipelines exist before anything imports JAX. This module shows
nothing itself: it imports neither the console nor the command line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl


def _project_root() -> str:
    """The Kedro project root, also when the cwd is a subfolder (a notebook in notebooks/)."""
    from kedro.utils import find_kedro_project

    return str(find_kedro_project(Path.cwd()) or Path.cwd())


# Parameters merge softly across config envs: an env (conf/<env>/parameters_*.yml) names only the keys it changes,
# down to nested ones, and every other key keeps its conf/base value. (Kedro's default, "destructive", would let an
# env's `sac:` replace the whole base `sac` section.) Lists are values: an env's list replaces base's.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {"project_root": _project_root},
}


class OnceConfigLoader(OmegaConfigLoader):
    """Kedro's ``OmegaConfigLoader`` that reads and merges each key's files once per instance (a session's), then
    hands out copies: a run asks for its parameters five times (Kedro's context, the config check, the JAX runtime,
    the search storage and MLflow's isolation hooks), ~0.1 s of YAML and OmegaConf each on this machine. A key set
    explicitly is Kedro's as before."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self:  # set explicitly (e.g. Kedro's runtime "globals"): the loader's own
            return super().__getitem__(key)
        loaded = self.__dict__.setdefault("_loaded_once", {})
        if key not in loaded:
            loaded[key] = super().__getitem__(key)
        return copy.deepcopy(loaded[key])


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


def credentials_file(env: str | None) -> str:
    """Where the credentials of a run in config env ``env`` are (Kedro's default env is ``local``): for messages."""
    return f"conf/{env or CONFIG_LOADER_ARGS['default_run_env']}/credentials.yml"


def search_storage_urls(params: dict[str, Any], load_credentials, where: str) -> dict[str, str | None]:
    """``{"<algo>_tune": url}`` for every registered algorithm: the ``url`` of the credentials entry its search's
    ``storage_credentials`` names, or None (no entry named: ``storage`` or the SQLite default). A name that is no
    entry, or an entry without a ``url``, is a ``ConfigError`` naming the parameter, the entry and the file
    (``where``). ``load_credentials()`` gives Kedro's credentials; it is called only when an entry is named."""
    from rlpipe.rl import algorithm
    from rlpipe.rl.errors import ConfigError

    urls: dict[str, str | None] = {}
    credentials = None
    for name in algorithm.names():
        section = params.get(f"{name}_tune")
        entry = section.get("storage_credentials") if isinstance(section, dict) else None
        urls[f"{name}_tune"] = None
        if not entry:
            continue
        credentials = load_credentials() if credentials is None else credentials
        key = f"{name}_tune.storage_credentials"
        if entry not in credentials:
            known = ", ".join(sorted(map(str, credentials))) or "none"
            raise ConfigError(key, f"{entry!r} is not an entry of {where} (its entries: {known})")
        url = credentials[entry].get("url") if isinstance(credentials[entry], dict) else None
        if not isinstance(url, str) or not url:
            raise ConfigError(key, f"the entry {entry!r} of {where} has no `url` (the study storage's SQLAlchemy "
                                   f"URL): write it as {entry}: {{url: postgresql://user:password@host/db}}")
        urls[f"{name}_tune"] = url
    return urls


def _credentials_of(loader) -> dict[str, Any]:
    """Kedro's credentials (``credentials*.yml`` of conf/base and the run's env), or none."""
    from kedro.config import MissingConfigException

    try:
        return loader["credentials"]
    except MissingConfigException:
        return {}


class SearchStorageHooks:
    """The search pipelines' storage URL from Kedro's credentials, never from the parameters (kedro-mlflow logs
    every parameter): the entry ``<algo>_tune.storage_credentials`` names is checked when the context is created
    (before any work) and its URL handed to the search as the dataset ``<algo>_tune.storage_url`` (in memory,
    never saved nor logged)."""

    def __init__(self) -> None:
        self._urls: dict[str, str | None] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        self._urls = search_storage_urls(loader["parameters"], lambda: _credentials_of(loader),
                                         credentials_file(context.env))

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        for namespace, url in self._urls.items():
            catalog[f"{namespace}.storage_url"] = url


def _run_options(args: list[str]) -> dict[str, Any] | None:
    """The options of ``kedro run <args>`` as Kedro's own ``run`` command parses them, or None where this cannot
    tell for sure (no Kedro project here, a usage error, run options from a ``--config`` file)."""
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
    options["project_root"] = str(root)
    return options


def _run_loader(options: dict[str, Any]):
    """The config loader ``kedro run`` with ``options`` would make (the project's, with its settings)."""
    return OnceConfigLoader(conf_source=options.get("conf_source") or str(Path(options["project_root"]) / "conf"),
                             env=options.get("env"), runtime_params=options.get("params") or {},
                             **CONFIG_LOADER_ARGS)


def pipeline_names() -> set[str] | None:
    """The names ``kedro run --pipelines`` accepts, known without building a pipeline (their modules import JAX,
    seconds): every registered algorithm's three (``<algo>``, ``<algo>_eval``, ``<algo>_tune``) and the pipelines
    ``rlpipe.pipelines.declared`` declares, read from its source (the keys of its two tables). None if that source
    no longer has the tables' shape: the run then finds out itself (``rlpipe.cli``). A test checks these are the
    names ``register_pipelines`` returns."""
    import ast
    import importlib.util

    from rlpipe.rl import algorithm

    registered = set(algorithm.names())
    names = {"__default__"} | {f"{algo}{suffix}" for algo in registered for suffix in ("", "_eval", "_tune")}
    spec = importlib.util.find_spec("rlpipe.pipelines.declared")
    tables = {}
    for statement in ast.parse(Path(spec.origin).read_text()).body:
        target = statement.target if isinstance(statement, ast.AnnAssign) else \
            statement.targets[0] if isinstance(statement, ast.Assign) else None
        if isinstance(target, ast.Name) and isinstance(statement.value, ast.Dict):
            tables[target.id] = statement.value
    try:
        for algo, wiring in zip(tables["ALGORITHM_PIPELINES"].keys, tables["ALGORITHM_PIPELINES"].values):
            if ast.literal_eval(algo) in registered:
                names.update(ast.literal_eval(key) for key in wiring.keys)
        for name, declared in zip(tables["PROJECT_PIPELINES"].keys, tables["PROJECT_PIPELINES"].values):
            if set(ast.literal_eval(declared.elts[0])) <= registered:
                names.add(ast.literal_eval(name))
    except (KeyError, ValueError, TypeError, AttributeError, IndexError):
        return None
    return names


def unknown_pipeline_message(requested: list[str], names: set[str]) -> str | None:
    """One line naming the requested pipelines that do not exist, a close match and every valid name; or None when
    every requested name is a pipeline."""
    import difflib

    unknown = [name for name in requested if name not in names]
    if not unknown:
        return None
    valid = sorted(name for name in names if name != "__default__")
    guesses = [match for name in unknown for match in difflib.get_close_matches(name, valid, n=1)]
    hint = f" (did you mean {' or '.join(repr(g) for g in guesses)}?)" if guesses else ""
    return (f"kedro run: no pipeline named {', '.join(repr(u) for u in unknown)}{hint}; "
            f"the pipelines are: {', '.join(valid)}")


def _requested(options: dict[str, Any]) -> list[str]:
    """The pipelines ``kedro run`` was asked for (``--pipelines``, or the deprecated ``--pipeline``)."""
    return ([options["pipeline"]] if options.get("pipeline") else []) + list(options.get("pipelines") or [])


def _check_sections_present(requested: list[str], params: dict[str, Any]) -> None:
    """A requested algorithm or search pipeline whose parameter section no config file has is a ``ConfigError``
    naming the section and the file that usually holds it (Kedro would stop later, with a traceback, on its
    missing ``params:`` input)."""
    from rlpipe.rl import algorithm
    from rlpipe.rl.errors import ConfigError

    for name in requested or [algorithm.DEFAULT]:
        algo = name.removesuffix("_tune")
        if algo in algorithm.names() and name not in params:
            what = "a search space, a budget and a storage" if name != algo else "the algorithm's config"
            raise ConfigError(name, f"missing: `kedro run --pipelines={name}` needs a `{name}:` section "
                                    f"({what}), e.g. conf/base/parameters_{name}.yml")


def _check_search_storages(requested: list[str], params: dict[str, Any], urls: dict[str, str | None]) -> None:
    """A requested search whose storage (its credentials entry's URL, or ``storage``) cannot be opened, or whose
    stored study has another direction or space, is a ``ConfigError`` naming the key, found here in a second
    instead of after Kedro's session and MLflow have loaded (``rlpipe.rl.study_storage``). The project's own SQLite
    file (no storage set) is only read, if it exists; nothing is created."""
    from rlpipe.rl import study_storage, tuning
    from rlpipe.rl.errors import ConfigError

    for name in requested:
        if name not in urls or not isinstance(params.get(name), dict):
            continue
        tune = tuning.load_tune_config(params[name], name)
        url, key = study_storage.configured(name, tune, urls[name])
        if url and (problem := study_storage.probe(url)) is not None:
            raise ConfigError(key, problem)
        if not url and (default := Path(_project_root()) / study_storage.default_file(name)).is_file():
            url = f"sqlite:///{default}"
        stored = study_storage.stored_study(url, tune.study_name) if url else None
        if stored is not None and (error := study_storage.study_mismatch(
                name, tune, study_storage.hide_password(url), *stored)) is not None:
            raise error


def run_pipeline_error(argv: list[str]) -> str | None:
    """On ``kedro run --pipelines=...`` (or the deprecated ``--pipeline``, not verbose, not help): the one line
    saying which requested pipeline does not exist and which do, or None (also when this cannot tell for sure:
    the run finds out itself). Shown, and the exit made, by the console (``rlpipe.console.init``)."""
    if len(argv) < 2 or argv[1] != "run" or any(a in ("-v", "--verbose", "-h", "--help") for a in argv[2:]):
        return None
    try:
        options = _run_options(list(argv[2:]))
        if options is None:
            return None
        requested = _requested(options)
        names = pipeline_names() if requested else None
    except Exception:  # noqa: BLE001 - anything else is the run's to report, with Kedro's context
        return None
    return unknown_pipeline_message(requested, names) if names is not None else None


def run_config_error(argv: list[str]) -> Any:
    """On ``kedro run ...`` (not verbose, not help): the ``ConfigError`` its parameters would stop the run with, or
    None (also when this cannot tell for sure: the run checks again). What the user sees of it, and the exit, is
    the console's (``rlpipe.console.init``): this module shows nothing."""
    if len(argv) < 2 or argv[1] != "run" or any(a in ("-v", "--verbose", "-h", "--help") for a in argv[2:]):
        return None
    from rlpipe.rl.errors import ConfigError

    try:
        options = _run_options(list(argv[2:]))
        if options is not None:
            loader = _run_loader(options)
            check_parameters(loader["parameters"])
            _check_sections_present(_requested(options), loader["parameters"])
            urls = search_storage_urls(loader["parameters"], lambda: _credentials_of(loader),
                                       credentials_file(options.get("env")))
            _check_search_storages(_requested(options), loader["parameters"], urls)
    except ConfigError as error:
        return error
    except Exception:  # noqa: BLE001 - anything else is the run's to report, with Kedro's context
        return None
    return None
