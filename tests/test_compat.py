"""Every private API of a dependency that rlpipe uses (``rlpipe.compat``), exercised against the installed packages.

A failure here means an upgrade changed or removed something rlpipe relies on: its message names the distribution,
its installed version and what changed, so the fix starts in ``rlpipe/compat.py`` instead of in a failed run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path, PurePosixPath

import pytest

from rlpipe import compat
from rlpipe.launch import free_port
from tests.support import Watched


@contextlib.contextmanager
def relied_on(distribution: str, what: str):
    """Turn any failure inside into one loud message naming the dependency, its version and what changed."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every way it breaks is the same news
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "(not installed)"
        pytest.fail(f"{distribution} {version} changed {what}, which rlpipe.compat relies on: "
                    f"{type(exc).__name__}: {exc}. Adapt rlpipe/compat.py to this version.", pytrace=False)


def test_a_failure_names_the_dependency_and_its_version():
    with pytest.raises(pytest.fail.Exception, match=r"^jax \d+\.\d+\S* changed the thing, .*KeyError"):
        with relied_on("jax", "the thing"):
            raise KeyError("gone")


# ----------------------------------------------------------------------------------------------------------- jax
def test_jax_distributed_state_offers_what_the_peer_watch_uses():
    with relied_on("jax", "jax._src.distributed.global_state (client, process_id, num_processes, "
                          "coordinator_address, shutdown)"):
        state = compat.jax_distributed_state()
        assert state.client is None and state.coordinator_address is None  # this process joined no distributed run
        assert (state.process_id, state.num_processes) == (0, 1)
        assert callable(state.shutdown)
        assert compat.jax_distributed_initialized() is False
    with relied_on("jax", "the coordination client's key-value store (key_value_set, key_value_try_get)"):
        from jax._src.lib import _jax

        for method in ("key_value_set", "key_value_try_get"):
            assert hasattr(_jax.DistributedRuntimeClient, method), method
        assert "allow_overwrite" in _jax.DistributedRuntimeClient.key_value_set.__doc__


# One process of a two-process jax.distributed run (public API only, no backend: nothing compiles). Process 0 holds
# the coordination service; both wait until killed or aborted. With "hook", process 1 has rlpipe's abort hook.
_JOINED = """
import os, sys, threading
import jax
from rlpipe import compat
address, me, hook = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "hook"
jax.distributed.initialize(coordinator_address=address, num_processes=2, process_id=me, initialization_timeout=60,
                           heartbeat_timeout_seconds=60)
if hook:
    compat.on_jax_coordination_abort(lambda: (os.write(2, b"the hook ran before the abort\\n"), os._exit(75)))
print(f"process {me} joined", flush=True)
threading.Event().wait()
"""


def _lose_the_coordinator(tmp_path, hook: bool) -> tuple[int, str]:
    """Process 1's exit status and output once process 0, the coordinator, is SIGKILLed."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    processes = [Watched([sys.executable, "-c", _JOINED, address, str(me), "hook" if hook else "no"], tmp_path, env)
                 for me in (0, 1)]
    try:
        for me, process in enumerate(processes):
            process.wait_for(f"process {me} joined", timeout=120)
        processes[0].kill()
        return processes[1].finish(timeout=120), processes[1].text
    finally:
        for process in processes:
            process.kill()


def test_jax_aborts_a_process_whose_coordinator_is_gone_and_the_hook_runs_first(tmp_path):
    """What ``compat.on_jax_coordination_abort`` relies on: JAX's coordination client ends a process whose
    coordination service (process 0) is gone with abort(), and the hook runs before it (here: ends with 75)."""
    status, output = _lose_the_coordinator(tmp_path, hook=False)
    with relied_on("jax", "how its coordination client ends a process whose coordination service is gone "
                          f"(abort(), SIGABRT: expected status {-signal.SIGABRT}, got {status})"):
        assert status == -signal.SIGABRT, output[-3000:]
        assert "JAX distributed service detected fatal errors" in output, output[-3000:]
    status, output = _lose_the_coordinator(tmp_path, hook=True)
    with relied_on("jax", f"its abort of such a process, which the hook no longer intercepts (status {status})"):
        assert status == 75 and "the hook ran before the abort" in output, output[-3000:]


def test_an_io_callback_failure_is_logged_on_the_logger_the_console_filters():
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import io_callback

    def failing(x):
        raise RuntimeError("probe")

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger(compat.JAX_CALLBACK_LOGGER).addHandler(handler)
    try:
        with contextlib.suppress(Exception):
            jax.block_until_ready(jax.jit(lambda x: io_callback(failing, jax.ShapeDtypeStruct((), jnp.float32), x))(
                np.float32(1.0)))
    finally:
        logging.getLogger(compat.JAX_CALLBACK_LOGGER).removeHandler(handler)
    with relied_on("jax", f"the logger of io_callback failures ({compat.JAX_CALLBACK_LOGGER!r})"):
        assert any("io_callback failed" in r.getMessage() for r in records), [r.getMessage() for r in records]


def test_an_array_made_weakly_typed_keeps_its_values_devices_and_dtype():
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = NamedSharding(jax.make_mesh((len(jax.devices()),), ("d",)), PartitionSpec("d"))
    strong = jax.device_put(np.arange(4, dtype=np.int32), sharding)
    with relied_on("jax", "jax._src.lax.lax._convert_element_type(x, dtype, weak_type=True)"):
        weak = compat.weakly_typed(strong)
        assert weak.weak_type and not strong.weak_type
    assert weak.dtype == jnp.int32 and weak.sharding.is_equivalent_to(sharding, 1)
    np.testing.assert_array_equal(np.asarray(weak), np.arange(4))
    assert jax.typeof(weak) != jax.typeof(strong)  # what it changes: the signature a program is compiled for


def test_a_process_other_than_0_writes_the_compilation_cache_once_allowed(monkeypatch):
    import uuid

    import jax
    import numpy as np

    from jax._src import compiler

    state = compat.jax_distributed_state()
    monkeypatch.setattr(state, "process_id", 1)  # as process 1 of a multi-process run sees itself
    jax_own = getattr(compiler._cache_write, "process_0_only", compiler._cache_write)  # an earlier run installed it
    monkeypatch.setattr(compiler, "_cache_write", jax_own)
    cache = Path(jax.config.jax_compilation_cache_dir)

    def compile_a_new_program() -> list[Path]:
        def probe(x):
            return x * 3.0 + 1.0

        probe.__name__ = name = f"rlpipe_cache_probe_{uuid.uuid4().hex}"  # a program never compiled before
        jax.block_until_ready(jax.jit(probe)(np.float32(1.0)))
        return sorted(cache.glob(f"jit_{name}-*"))

    with relied_on("jax", "jax._src.compiler._cache_write (only process 0 writes the persistent cache)"):
        assert compile_a_new_program() == []  # JAX's own rule
    compat.write_compilation_cache_in_every_process()
    compat.write_compilation_cache_in_every_process()  # idempotent: wrapped once
    written = compile_a_new_program()
    try:
        with relied_on("jax", "jax._src.compilation_cache.put_executable_and_time (the cache write itself)"):
            assert len(written) == 1 and written[0].stat().st_size > 0, written
    finally:
        for entry in written:
            entry.unlink()


def test_a_program_with_host_callbacks_is_cached_and_loaded_with_the_new_callbacks(monkeypatch):
    import uuid

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import io_callback

    from jax._src import compiler

    cache = Path(jax.config.jax_compilation_cache_dir)
    name = f"rlpipe_callback_probe_{uuid.uuid4().hex}"  # a program never compiled before

    def run_with(factor: float) -> np.ndarray:
        """A new jitted function each time (no in-memory hit): three host callbacks multiplying by ``factor``."""
        def callback(x):
            return (np.asarray(x) * factor).astype(np.float32)

        def probe(x):
            step = lambda i, c: io_callback(callback, jax.ShapeDtypeStruct((3,), jnp.float32), c) + 1  # noqa: E731
            return jax.lax.fori_loop(0, 3, step, x)

        probe.__name__ = name
        return np.asarray(jax.jit(probe)(jnp.ones(3, jnp.float32)))

    monkeypatch.setattr(compiler, "compile_or_get_cached",
                        getattr(compiler.compile_or_get_cached, "jax_own", compiler.compile_or_get_cached))
    with relied_on("jax", "jax._src.compiler.compile_or_get_cached (programs with host callbacks are not cached)"):
        assert run_with(2.0).tolist() == [15.0] * 3 and not list(cache.glob(f"jit_{name}-*"))  # JAX's own rule
    compat.cache_programs_with_host_callbacks()
    compat.cache_programs_with_host_callbacks()  # idempotent: wrapped once
    written = []
    try:
        with relied_on("jax", "the persistent cache of executables with host callbacks (key, write, load)"):
            assert run_with(2.0).tolist() == [15.0] * 3  # compiled and written
            written = sorted(cache.glob(f"jit_{name}-*{compat.HOST_CALLBACK_ENTRY_SUFFIX}*"))
            assert len(written) == 1 and written[0].stat().st_size > 0, written

            def no_compiling(*args, **kwargs):
                raise AssertionError("compiled again instead of loading the cache entry")

            monkeypatch.setattr(compiler, "backend_compile_and_load", no_compiling)
            assert run_with(3.0).tolist() == [40.0] * 3  # loaded, and calling this trace's callback
    finally:
        for entry in cache.glob(f"jit_{name}-*"):
            entry.unlink()


# --------------------------------------------------------------------------------------------------------- Kedro
def test_a_versioned_kedro_dataset_exposes_its_paths(tmp_path):
    from kedro.io.core import Version
    from kedro_datasets.json import JSONDataset

    filepath = tmp_path / "entry.json"
    with relied_on("kedro", "AbstractVersionedDataset's _filepath, _version, _get_load_path, _get_save_path, "
                            "_get_versioned_path"):
        plain = JSONDataset(filepath=str(filepath))
        assert compat.dataset_filepath(plain) == PurePosixPath(filepath)
        assert compat.dataset_version(plain) is None
        assert compat.dataset_saved_path(plain) == str(filepath)

        versioned = JSONDataset(filepath=str(filepath), version=Version(None, "2026-01-02T03.04.05.678Z"))
        expected = PurePosixPath(filepath) / "2026-01-02T03.04.05.678Z" / "entry.json"
        assert compat.dataset_version(versioned).save == "2026-01-02T03.04.05.678Z"
        assert compat.dataset_save_path(versioned) == expected
        versioned.save({"a": 1})
        assert compat.dataset_saved_path(versioned) == str(expected)
        assert compat.dataset_load_path(versioned) == expected
        assert compat.dataset_filepath(object()) is None


def test_a_kedro_context_gives_its_hook_manager(tmp_path):
    import pluggy
    from kedro.config import OmegaConfigLoader
    from kedro.framework.context import KedroContext

    manager = pluggy.PluginManager("kedro")
    with relied_on("kedro", "KedroContext._hook_manager"):
        context = KedroContext(package_name="rlpipe", project_path=tmp_path,
                               config_loader=OmegaConfigLoader(str(tmp_path)), hook_manager=manager, env=None)
        assert compat.context_hook_manager(context) is manager


def test_kedro_ships_its_rich_logging_config():
    with relied_on("kedro", "kedro/framework/project/rich_logging.yml (its rich console logging config)"):
        config = compat.kedro_rich_logging_config()
        assert config["handlers"]["rich"]["class"] == "kedro.logging.RichHandler"
        assert "rich" in config["root"]["handlers"]


def test_new_kedro_sessions_take_their_id_from_the_maker(project):
    from kedro.framework.session import KedroSession, session
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)  # imports the project's settings, which set rlpipe's own maker
    original = session.generate_timestamp
    try:
        with relied_on("kedro", "kedro.framework.session.session.generate_timestamp (read when a session is "
                                "created)"):
            compat.set_session_id_maker(lambda: "2026-05-06T07.08.09.123Z")
            with KedroSession.create(project_path=project) as made:
                assert made.session_id == "2026-05-06T07.08.09.123Z"
    finally:
        session.generate_timestamp = original


# --------------------------------------------------------------------------------------------------- kedro-mlflow
def test_kedro_mlflow_metric_history_points_and_switch():
    from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

    with relied_on("kedro-mlflow", "MlflowMetricsHistoryDataset._logging_activated, "
                                   "_build_args_list_from_metric_item, _save"):
        dataset = MlflowMetricsHistoryDataset(prefix="train")
        assert compat.metric_logging_activated(dataset) is True
        dataset._logging_activated = False  # what kedro-mlflow does outside an MLflow run  # noqa: SLF001
        assert compat.metric_logging_activated(dataset) is False
        history = {"loss": [{"value": 1.5, "step": 0}, {"value": 0.5, "step": 10}], "lr": {"value": 0.1, "step": 3}}
        assert list(compat.metric_points(dataset, history)) == [("train.loss", 1.5, 0), ("train.loss", 0.5, 10),
                                                                 ("train.lr", 0.1, 3)]
        assert list(inspect.signature(MlflowMetricsHistoryDataset._save).parameters) == ["self", "data"]  # noqa: SLF001
        compat.save_metric_history_as_kedro_mlflow(dataset, history)  # logging off: logs nothing, raises nothing


# ---------------------------------------------------------------------------------------------------------- MLflow
def test_mlflow_package_map_warms_up():
    with relied_on("mlflow", "mlflow.utils.requirements_utils._init_packages_to_modules_map"):
        from mlflow.utils import requirements_utils

        compat.warm_mlflow_package_map()
        assert requirements_utils._MODULES_TO_PACKAGES  # noqa: SLF001 - what the warm-up fills


def test_mlflow_system_metrics_monitors_are_found_by_run_id():
    class Monitor:
        finished = False

        def finish(self):
            self.finished = True

    with relied_on("mlflow", "mlflow.tracking.fluent.run_id_to_system_metrics_monitor"):
        from mlflow.tracking import fluent

        assert "run_id_to_system_metrics_monitor" in inspect.getsource(fluent.start_run)
        monitor = Monitor()
        fluent.run_id_to_system_metrics_monitor["rlpipe-compat-probe"] = monitor
        assert compat.stop_system_metrics_monitor("rlpipe-compat-probe") is True
        assert monitor.finished and "rlpipe-compat-probe" not in fluent.run_id_to_system_metrics_monitor
        assert compat.stop_system_metrics_monitor("rlpipe-compat-probe") is False


# ---------------------------------------------------------------------------------------------------------- Optuna
def test_optuna_records_a_trials_first_heartbeat_at_once(tmp_path):
    import optuna

    database = tmp_path / "study.db"
    with relied_on("optuna", "optuna.storages._heartbeat (BaseHeartbeat, is_heartbeat_enabled) and "
                             "Trial._trial_id"):
        storage = optuna.storages.RDBStorage(f"sqlite:///{database}", heartbeat_interval=60)
        trial = optuna.create_study(storage=storage).ask()
        assert compat.record_heartbeat_now(trial) is True
        storage.remove_session()
        with contextlib.closing(sqlite3.connect(database)) as db:
            beats = db.execute("SELECT trial_id FROM trial_heartbeats").fetchall()
        assert beats == [(trial._trial_id,)]  # noqa: SLF001
        assert compat.record_heartbeat_now(optuna.create_study().ask()) is False  # in memory: no heartbeats


# ------------------------------------------------------------------------------------------------------------ Brax
def test_brax_lists_its_registered_envs():
    pytest.importorskip("brax", reason="the brax extra is not installed")
    from brax import envs

    with relied_on("brax", "brax.envs._envs (the registered env names)"):
        names = compat.brax_env_names(envs)
        assert {"hopper", "halfcheetah", "ant"} <= set(names) and names == sorted(names)
        envs.register_environment("rlpipe_compat_probe", object)  # the public way in: listed by the same name
        try:
            assert "rlpipe_compat_probe" in compat.brax_env_names(envs)
        finally:
            envs._envs.pop("rlpipe_compat_probe", None)  # noqa: SLF001
