"""Every private API of a dependency that rlpipe uses, in one place.

A private name (``jax._src``, an underscore attribute, a module global another module reads at call time) may
change in any release without notice. Keeping each use here, behind a function named for what we need, means an
upgrade that breaks one breaks this module alone, and ``tests/test_compat.py`` says which dependency, which
version and which name (it exercises every function below against the installed packages).

One module rather than a package per dependency: every dependency is imported inside the function that needs it,
so importing this module costs nothing and pulls in nothing; ``rlpipe.rl`` (which must never import Kedro) may
use the JAX functions without loading Kedro, MLflow or Optuna.

Not here: the methods a subclass must define by a dependency's documented contract (``_exists`` and
``_describe`` of a Kedro dataset, ``_save`` of a kedro-mlflow dataset): those are overrides, not uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

# ----------------------------------------------------------------------------------------------------------- jax
# The logger io_callback failures are reported on ("jax.io_callback failed" and the callback's traceback).
JAX_CALLBACK_LOGGER = "jax._src.callback"


def jax_distributed_state() -> Any:
    """JAX's ``global_state`` of ``jax.distributed``: its coordination-service ``client`` (key-value store),
    ``process_id``, ``num_processes``, ``coordinator_address`` and ``shutdown``. The public API offers none of them."""
    from jax._src.distributed import global_state

    return global_state


def jax_distributed_initialized() -> bool:
    """Whether this process joined a ``jax.distributed`` run (the public API has no such query)."""
    return jax_distributed_state().client is not None


def weakly_typed(x: Any) -> Any:
    """``x`` (a ``jax.Array``) as a weakly typed array of its dtype, on the same devices: what JAX makes of a Python
    scalar (an env state's ``time = 0``), which a compiled program's signature distinguishes from the same dtype
    strongly typed. Only ``lax._convert_element_type`` takes the flag; the public ``convert_element_type`` and
    ``astype`` always return a strongly typed array."""
    from jax._src.lax.lax import _convert_element_type

    return _convert_element_type(x, x.dtype, weak_type=True)


def write_compilation_cache_in_every_process() -> None:
    """Let every process of a multi-process run write its programs to the persistent compilation cache, not only
    process 0.

    On CPU a program's cache key includes its process's view of the devices, so process 1 never finds what process
    0 wrote: JAX's rule "only process 0 writes" (``jax._src.compiler._cache_write``, meant to spare shared bucket
    stores the contention) leaves every other process compiling everything on every start, a restart included.
    Their keys never collide (each process has its own), so each writes its own entries. Idempotent.
    """
    import jax
    from jax._src import compilation_cache, compiler

    if hasattr(compiler._cache_write, "process_0_only"):  # noqa: SLF001 - installed already
        return
    process_0_only = compiler._cache_write  # noqa: SLF001

    def cache_write(cache_key, compile_time_secs, module_name, backend, executable, host_callbacks):
        if jax_distributed_state().process_id == 0 or host_callbacks:
            return process_0_only(cache_key, compile_time_secs, module_name, backend, executable, host_callbacks)
        if compile_time_secs < jax.config.jax_persistent_cache_min_compile_time_secs:
            return None
        try:
            compilation_cache.put_executable_and_time(cache_key, module_name, executable, backend,
                                                      int(compile_time_secs))
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs a compilation, no more
            import warnings

            warnings.warn(f"cannot write the compilation cache entry of {module_name!r}: {exc}", stacklevel=2)
        return None

    cache_write.process_0_only = process_0_only  # JAX's own, for a test to compare with
    compiler._cache_write = cache_write  # noqa: SLF001


# The suffix of the persistent cache entries of programs that call back into Python (JAX's reader never asks for
# such a key, so it never loads one of them without its callbacks).
HOST_CALLBACK_ENTRY_SUFFIX = "-with-host-callbacks"


def cache_programs_with_host_callbacks() -> None:
    """Let the persistent compilation cache keep the programs that call back into Python (a host env's reset and
    step, ``io_callback``): JAX never writes them (``jax._src.compiler._cache_write`` skips any program with host
    callbacks), so every run of a Gymnasium, MuJoCo or other host env compiled its training chunk from scratch.

    A compiled program names its callbacks by index only (the ``index`` of its ``xla_ffi_python_cpu_callback``
    custom calls); the Python functions are bound when the executable is loaded (``host_callbacks`` of the client's
    ``compile_and_load`` and ``deserialize_executable``). So the program is stored under JAX's own key for it (its
    module and compile options: the same HLO calls as many callbacks, with the same shapes, in the same order) and
    loaded with the callbacks of the trace that asks for it. An entry that cannot be read or written costs a
    compilation, no more. Idempotent.
    """
    import time
    import warnings

    import jax
    from jax._src import compilation_cache, compiler
    from jax._src.lib.mlir import ir

    if hasattr(compiler.compile_or_get_cached, "jax_own"):  # noqa: SLF001 - installed already
        return
    jax_own = compiler.compile_or_get_cached

    def compile_or_get_cached(backend, computation, devices, compile_options, host_callbacks, executable_devices,
                              pgle_profiler=None):
        key = None
        if host_callbacks and not jax.config.jax_enable_pgle:
            key = compiler._get_cache_key(compile_options, backend, computation, devices)  # noqa: SLF001
        cache = compilation_cache._get_cache(backend) if key is not None else None  # noqa: SLF001
        if cache is None:
            return jax_own(backend, computation, devices, compile_options, host_callbacks, executable_devices,
                           pgle_profiler)
        key += HOST_CALLBACK_ENTRY_SUFFIX
        try:
            stored = cache.get(key)
            if stored is not None:
                serialized, _ = compilation_cache.extract_executable_and_time(
                    compilation_cache.decompress_executable(stored))
                return backend.deserialize_executable(serialized, executable_devices, compile_options,
                                                      host_callbacks=host_callbacks)
        except Exception as exc:  # noqa: BLE001 - a broken entry is compiled again and overwritten
            warnings.warn(f"cannot load the compilation cache entry {key!r}: {exc}", stacklevel=2)
        started = time.monotonic()
        executable = compiler.backend_compile_and_load(backend, computation, executable_devices, compile_options,
                                                       host_callbacks)
        module_name = ir.StringAttr(computation.operation.attributes["sym_name"]).value
        try:
            compilation_cache.put_executable_and_time(key, module_name, executable, backend,
                                                      int(time.monotonic() - started))
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs a compilation, no more
            warnings.warn(f"cannot write the compilation cache entry of {module_name!r}: {exc}", stacklevel=2)
        return executable

    compile_or_get_cached.jax_own = jax_own  # for a test to compare with
    compiler.compile_or_get_cached = compile_or_get_cached  # noqa: SLF001


_ABORT_HANDLER: Any = None  # the C function pointer libc's signal table holds: kept alive as long as it is there


def on_jax_coordination_abort(callback: Callable[[], None]) -> None:
    """Run ``callback`` when this process aborts, before it dies.

    JAX's coordination client (jaxlib 0.10) ends its process with a fatal log, abort() (SIGABRT), once its
    coordination service fails: in every process but 0 when process 0, which holds the service, is gone. Its hook
    for that, ``missed_heartbeat_callback`` of ``jax._src.lib._jax.get_distributed_runtime_client``, cannot take a
    Python callable (handing it the ``absl::Status`` throws ``std::bad_cast``, which terminates the process too),
    and ``jax.distributed.initialize`` passes none. So the hook is a SIGABRT handler, installed with libc's
    ``signal`` through ctypes: it runs in the aborting thread once that thread holds the GIL. ``callback`` may end
    the process (``os._exit``); if it returns or raises, the abort goes on as before (the handler restores the
    default action, and abort() raises the signal again).
    """
    import ctypes
    import signal

    global _ABORT_HANDLER
    libc = ctypes.CDLL(None)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p

    def on_abort(_signum: int) -> None:
        libc.signal(signal.SIGABRT, None)  # SIG_DFL: whatever happens below, a second abort() kills
        try:
            callback()
        except BaseException:  # noqa: BLE001 - an abort is under way: it goes on
            pass

    _ABORT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)(on_abort)
    libc.signal(signal.SIGABRT, ctypes.cast(_ABORT_HANDLER, ctypes.c_void_p))


# --------------------------------------------------------------------------------------------------------- Kedro
def dataset_filepath(dataset: Any) -> PurePosixPath | None:
    """The path a Kedro file dataset was configured with (unversioned: a versioned one's versions are below it);
    None for a dataset without one."""
    return getattr(dataset, "_filepath", None)


def dataset_version(dataset: Any) -> Any:
    """The ``kedro.io.Version`` a versioned dataset was given (None: not versioned)."""
    return getattr(dataset, "_version", None)


def dataset_load_path(dataset: Any) -> PurePosixPath:
    """Where a Kedro file dataset loads from: the resolved version's path, or its filepath if unversioned."""
    return dataset._get_load_path()  # noqa: SLF001


def dataset_save_path(dataset: Any) -> PurePosixPath:
    """Where a Kedro file dataset saves to: this session's version's path, or its filepath if unversioned."""
    return dataset._get_save_path()  # noqa: SLF001


def dataset_saved_path(dataset: Any) -> str:
    """Where a Kedro file dataset just saved: this session's version of a versioned dataset, else its filepath."""
    version = dataset.resolve_save_version() if dataset_version(dataset) else None
    return str(dataset._get_versioned_path(version) if version else dataset_filepath(dataset))  # noqa: SLF001


def context_hook_manager(context: Any) -> Any:
    """The plugin manager of a ``KedroContext`` (its hooks), or None: Kedro has no public accessor."""
    return getattr(context, "_hook_manager", None)


def kedro_rich_logging_config() -> dict[str, Any]:
    """Kedro's own rich console logging config (the file beside ``kedro.framework.project`` it falls back to when
    the project has none; not exposed by any public name)."""
    from pathlib import Path

    import yaml
    from kedro.framework import project

    return yaml.safe_load((Path(project.__file__).parent / "rich_logging.yml").read_text())


def set_session_id_maker(make: Callable[[], str]) -> None:
    """Make Kedro name new sessions with ``make()``: ``kedro.framework.session.session`` reads its module global
    ``generate_timestamp`` each time it creates a session."""
    from kedro.framework.session import session

    session.generate_timestamp = make


# --------------------------------------------------------------------------------------------------- kedro-mlflow
def metric_logging_activated(dataset: Any) -> bool:
    """Whether a kedro-mlflow metrics dataset logs at all (kedro-mlflow turns it off outside an MLflow run)."""
    return bool(dataset._logging_activated)  # noqa: SLF001


def metric_points(dataset: Any, data: dict[str, Any]) -> Iterable[tuple[str, float, int]]:
    """The ``(key, value, step)`` points a kedro-mlflow ``MlflowMetricsHistoryDataset`` logs for ``data``, keys
    with the dataset's prefix, as kedro-mlflow itself builds them."""
    for name, history in data.items():
        yield from dataset._build_args_list_from_metric_item(name, history)  # noqa: SLF001


def save_metric_history_as_kedro_mlflow(dataset: Any, data: dict[str, Any]) -> None:
    """kedro-mlflow's own ``MlflowMetricsHistoryDataset`` saving ``data`` (one ``log_metric`` per point)."""
    from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

    MlflowMetricsHistoryDataset._save(dataset, data)  # noqa: SLF001


# ---------------------------------------------------------------------------------------------------------- MLflow
def warm_mlflow_package_map() -> None:
    """Build MLflow's map of installed packages to modules now (it is built on the first model logged)."""
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()  # noqa: SLF001


def stop_system_metrics_monitor(run_id: str) -> bool:
    """Stop the system-metrics monitor MLflow started for ``run_id`` (``end_run`` stops only the one of the run it
    knows as active); False if there was none."""
    from mlflow.tracking.fluent import run_id_to_system_metrics_monitor

    monitor = run_id_to_system_metrics_monitor.pop(run_id, None)
    if monitor is None:
        return False
    monitor.finish()
    return True


# ---------------------------------------------------------------------------------------------------------- Optuna
def record_heartbeat_now(trial: Any) -> bool:
    """Write a trial's first heartbeat now, if its storage keeps heartbeats (optuna's thread writes it whenever it
    is scheduled; a worker killed before that leaves a trial never marked stale). False if it keeps none."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = trial.storage
    if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
        return False
    storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
    return True


# ------------------------------------------------------------------------------------------------------------ Brax
def brax_env_names(envs_module: Any) -> list[str]:
    """The names ``brax.envs.get_environment`` accepts, sorted (Brax lists them nowhere public)."""
    return sorted(envs_module._envs)  # noqa: SLF001
