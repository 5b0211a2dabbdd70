"""What ``kedro run`` shows: one line per node start and finish with its time, the training progress, the
evaluation, and where the artifacts and the MLflow run are; config errors as one short block without a traceback.

``kedro run -v`` (or ``RLPIPE_VERBOSE=1``) brings back everything: Kedro's own rich logging, every third-party
warning, and the traceback of a config error. ``KEDRO_LOGGING_CONFIG=<file>`` replaces the logging config
(``conf/logging.yml``) altogether.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from typing import Any

from kedro.framework.hooks import hook_impl

from rlpipe.compat import JAX_CALLBACK_LOGGER, dataset_filepath, kedro_rich_logging_config, warm_mlflow_package_map

VERBOSE_ENV = "RLPIPE_VERBOSE"
CONFIG_ERROR_EXIT_CODE = 2  # like a usage error: fix the command or the conf/ files and run again
ENV_ERROR_EXIT_CODE = 3  # the environment raised during the run
DISK_ERROR_EXIT_CODE = 74  # EX_IOERR: a checkpoint could not be written; not 75, a restart alone would not help
logger = logging.getLogger("rlpipe.console")
ANNOUNCE_AFTER_S = 2.0  # a node (other than train) still running after this long gets its start line


def verbose() -> bool:
    """Whether everything is asked for: ``-v``/``--verbose`` on the command line or ``RLPIPE_VERBOSE`` set."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    args = sys.argv[1:]
    return "run" in args and any(a in ("-v", "--verbose") for a in args)


# Third-party warnings that say nothing to a user of rlpipe: (message regex, why it is dropped).
NOISE = (
    # kedro-mlflow's pipeline models (defined when its CLI is imported) have no type hints on `predict`, and mlflow
    # asks for them at every such class definition; rlpipe's own policy model takes DataFrames and arrays alike.
    (r"(\x1b\[[0-9;]*m)?Add type hints to the `predict` method", "kedro-mlflow's and rlpipe's pyfunc models"),
    # Kedro 1.7 and kedro-mlflow register their config resolvers with the call omegaconf deprecates.
    (r"register_new_resolver\(\) is deprecated", "Kedro's and kedro-mlflow's resolvers"),
    # Kedro 1.7 deprecates `--pipeline` in favour of `--pipelines`; rlpipe documents `--pipelines=sac`; both work.
    (r"Option '--pipeline' is deprecated", "kedro run --pipeline"),
    # Kedro warns of any dataset name with a dot, also the ones its own namespaces make (`sac.agent` as the input
    # of the `sac_eval` pipeline is the documented way to share an entry between namespaces).
    (r"One or more dataset names contain '\.' characters", "namespaced dataset names"),
)
# Environment defaults set first in every `kedro` command (an explicit setting wins).
FAST_START_ENV = {  # mlflow's start_run probes for a Databricks serverless-GPU job to resume by importing IPython
                  # (0.4 s here) and asking it for Databricks' dbutils; rlpipe's runs are not Databricks jobs
                  "MLFLOW_ENABLE_SGC_RUN_RESUMPTION_FOR_DATABRICKS_JOBS": "false",
                  # mlflow draws a tqdm bar for every artifact it reads back (logging a model) when tqdm is installed
                  # (Optuna brings it): carriage-return noise in a log file
                  "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def init() -> None:
    """Kedro's ``kedro.init`` plugin hook: runs first in every ``kedro`` command, before Kedro loads the plugins
    (kedro-mlflow's CLI imports mlflow, whose warnings would come before anything of the project's); then the
    parameters of a ``kedro run`` are checked (``rlpipe.configuration.run_config_error``): a bad one ends the
    process here with the error block and status 2."""
    for name, value in FAST_START_ENV.items():
        os.environ.setdefault(name, value)
    if verbose():
        return
    import re

    for pattern, _ in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    # mlflow shows its warnings under a filter of its own ("once", set around the call), which overrides the
    # filters above; they are dropped where warnings are shown instead.
    noise = re.compile("|".join(f"(?:{pattern})" for pattern, _ in NOISE))
    show = warnings.showwarning

    def show_unless_noise(message, category, filename, lineno, file=None, line=None):
        if not noise.match(str(message)):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_unless_noise
    from rlpipe.configuration import run_config_error, run_pipeline_error

    if (line := run_pipeline_error(sys.argv)) is not None:  # a mistyped pipeline name: one line, status 2
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        os._exit(CONFIG_ERROR_EXIT_CODE)
    error = run_config_error(sys.argv)
    if error is not None:  # a config error of `kedro run` ends here, before the plugins load
        sys.stderr.write(config_error_block(error) + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(CONFIG_ERROR_EXIT_CODE)  # nothing has started that needs tearing down


class BriefFormatter(logging.Formatter):
    """``HH:MM:SS message``; warnings and errors also name their level and, for other libraries, the logger."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = line.partition(" ")
            source = "" if record.name.startswith("rlpipe") else f" [{record.name}]"
            line = f"{stamp} {record.levelname}{source} {rest}"
        return line


def configure_logging(verbose_: bool) -> None:
    """The quiet console (``conf/logging.yml`` with the brief format), or with ``verbose_`` Kedro's full rich
    logging with rlpipe's debug lines. A ``KEDRO_LOGGING_CONFIG`` of the user's is left alone."""
    if os.environ.get("KEDRO_LOGGING_CONFIG"):
        return
    if verbose_:
        from kedro.framework.project import LOGGING

        LOGGING.configure(kedro_rich_logging_config())
        logging.getLogger("rlpipe").setLevel(logging.DEBUG)
        return
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(BriefFormatter())
            handler.addFilter(_not_about_a_config_error)
    # these set their own levels (and mlflow its own handler) when imported, after conf/logging.yml was applied
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# "Registering new custom resolver", "Mlflow run ... has started" (rlpipe names the run at the end); "Validating
# input example against model signature", "Registered model ... already exists. Creating a new version": the
# policy model line says what was logged and registered
QUIET_LOGGERS = ("kedro_mlflow", "mlflow")


def _not_about_a_config_error(record: logging.LogRecord) -> bool:
    """Kedro's own lines about a node that failed with a ConfigError, an environment's error or a checkpoint that
    could not be written ("Node ... failed with error", "No nodes ran. Repeat the previous command"): the error
    block says it once, with what to do."""
    if record.name == JAX_CALLBACK_LOGGER:  # "jax.io_callback failed" and the env's traceback: the block says it
        return env_error_in(record.exc_info[1] if record.exc_info else None) is None
    if not record.name.startswith("kedro"):
        return True
    error = sys.exc_info()[1]
    return config_error_in(error) is None and env_error_in(error) is None and disk_error_in(error) is None


def disk_error_in(exc: BaseException | None) -> Any:
    """The checkpoint that could not be written (a full or read-only disk) that caused ``exc``, or None."""
    from rlpipe.rl.checkpoint import CheckpointWriteError

    return _cause_of_type(exc, CheckpointWriteError)


def config_error_in(exc: BaseException | None) -> Any:
    """The ConfigError that caused ``exc`` (itself, or one in its chain of causes), or None."""
    from rlpipe.rl.errors import ConfigError

    return _cause_of_type(exc, ConfigError)


def env_error_in(exc: BaseException | None) -> Any:
    """The error a host environment raised that caused ``exc``, or None."""
    if exc is None:
        return None
    from rlpipe.rl.envs.host import HostEnvError

    return _cause_of_type(exc, HostEnvError)


def _cause_of_type(exc: BaseException | None, kind: type) -> Any:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def env_error_block(error: Any) -> str:
    """A failing environment for people: what raised where, and that the checkpoints are kept."""
    return (f"Environment error:\n  {error}\n"
            "The run stopped there; checkpoints written before it are kept (train.resume=true continues from the "
            f"last one). (For the traceback: kedro run -v ..., or {VERBOSE_ENV}=1)")


def disk_error_block(error: Any) -> str:
    """A checkpoint directory that cannot be written, for people: which, why, and what is kept."""
    return f"Checkpoint error:\n  {error}\n(For the traceback: kedro run -v ..., or {VERBOSE_ENV}=1)"


def config_error_block(error: Any) -> str:
    """A config error for people: the key, the problem, and how to see the traceback."""
    return (f"Configuration error:\n  {error.key}: {error.problem}\n"
            f"Nothing was run. (For the traceback: kedro run -v ..., or {VERBOSE_ENV}=1)")


class ConsoleHooks:
    """One line per node when it finishes (with its time), a start line too for the train node and any node still
    running after ``ANNOUNCE_AFTER_S``, and where everything went when the run ends."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._announce: dict[str, threading.Timer] = {}  # start lines not shown yet
        self._run_started = None
        self._saved: set[str] = set()
        self._mlflow_run = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._run_started = time.perf_counter()
        self._version = run_params.get("session_id") or run_params.get("run_id")
        from rlpipe import versions

        versions.set_current_run(self._version)
        self._saved, self._mlflow_run = set(), None

    @hook_impl
    def before_node_run(self, node) -> None:
        self._started[node.name] = time.perf_counter()
        if node.name.endswith(".train"):  # its compile and progress lines follow
            logger.info("%s ...", node.name)
            _warm_up_in_background()
        else:  # a node still running after a moment says so; a quick one shows only its "done" line
            self._announce[node.name] = threading.Timer(ANNOUNCE_AFTER_S, logger.info, ("%s ...", node.name))
            self._announce[node.name].daemon = True
            self._announce[node.name].start()

    def _ended(self, node) -> float:
        """Seconds since ``node`` started; its pending start line, if not yet shown, is not shown."""
        if (timer := self._announce.pop(node.name, None)) is not None:
            timer.cancel()
        return time.perf_counter() - self._started.pop(node.name, time.perf_counter())

    @hook_impl
    def after_node_run(self, node) -> None:
        seconds = self._ended(node)
        logger.info("%s done in %.1f s", node.name, seconds)
        self._remember_mlflow_run()

    @hook_impl
    def on_node_error(self, error: Exception, node) -> None:
        seconds = self._ended(node)
        if config_error_in(error) is None and disk_error_in(error) is None:  # those are said once, in a block
            logger.error("%s failed after %.1f s: %s: %s", node.name, seconds, type(error).__name__, error)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.add(dataset_name)

    def _remember_mlflow_run(self) -> None:
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and self._mlflow_run is None and (run := mlflow.active_run()) is not None:
            self._mlflow_run = (run.info.run_id, run.info.experiment_id, mlflow.get_tracking_uri())

    @hook_impl
    def after_pipeline_run(self, catalog) -> None:
        took = time.perf_counter() - (self._run_started or time.perf_counter())
        logger.info("run %s finished in %.1f s", self._version, took)
        folders = sorted({_folder(catalog, name) for name in self._saved} - {None})
        if folders:
            logger.info("artifacts (version %s): %s", self._version, ", ".join(folders))
        if self._mlflow_run is not None:
            run_id, experiment, uri = self._mlflow_run
            logger.info("MLflow run %s (experiment %s) in %s: `make ui` to browse it", run_id, experiment, uri)


def _warm_up_in_background() -> None:
    """While training keeps the device busy (and the interpreter free), load what the reporting nodes and the
    MLflow model logging will need: the plotting modules, and mlflow's map of installed packages (scanned on the
    first model logged: 0.75 s here). Imports take the import lock, so nothing is loaded twice; a failure here only
    means the work happens later, where it always did."""
    import threading

    def warm_up() -> None:
        try:
            import importlib

            for module in ("matplotlib.pyplot", "kedro_datasets.matplotlib", "mlflow.pyfunc"):
                importlib.import_module(module)
            warm_mlflow_package_map()
        except Exception:  # noqa: BLE001
            logger.debug("background warm-up failed", exc_info=True)

    threading.Thread(target=warm_up, name="rlpipe-warm-up", daemon=True).start()


def _folder(catalog, name: str) -> str | None:
    """The folder a saved dataset lives in, relative to the project (its versions are subfolders)."""
    try:
        dataset = catalog.get(name)
    except Exception:  # noqa: BLE001 - a name the catalog cannot resolve is simply not listed
        return None
    path = dataset_filepath(dataset)
    if path is None:
        return None
    from pathlib import Path

    path = Path(str(path))
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return str(path.parent) + "/"
