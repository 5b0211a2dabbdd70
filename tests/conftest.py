"""Test setup: two forced CPU devices (so every pmap path runs on 2 devices), telemetry off, tiny configs."""

import os

# Must happen before jax initializes its backends.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # rlpipe may have set other flags
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RLPIPE_JAX_CACHE_DIR", str(PROJECT_ROOT / ".jax_cache"))

from rlpipe.rl.compilation_cache import use_compilation_cache  # noqa: E402

# The same persistent compilation cache the Kedro hook turns on, for the tests that call the library directly.
use_compilation_cache(os.environ["RLPIPE_JAX_CACHE_DIR"])

# Small enough to compile and run in seconds; still exercises every stage on 2 devices.
TINY_SAC = {
    "seed": 3,
    "scenarios": {"num_train": 8, "num_eval": 4},
    "network": {"hidden_sizes": [16, 16]},
    "buffer": {"capacity": 512, "prefill_steps": 64},
    "train": {
        "total_env_steps": 320,
        "num_envs": 4,
        "batch_size": 16,
        "grad_updates_per_iter": 2,
        "log_every_env_steps": 64,
        "checkpoint_every_env_steps": 128,
    },
}


# Slow tests whose bodies belong to another work stream (so not decorated in their file): two processes, one killed.
SLOW_ELSEWHERE = ("tests/test_distributed.py::test_a_lost_process_0_",)


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.slow`` for the tests named in ``SLOW_ELSEWHERE`` (by the start of their node id); then the
    slow tests first (each file's in their order): xdist's workers start on the long runs and share out the many
    short ones at the end, instead of one worker finishing a long run alone."""
    for item in items:
        if item.nodeid.startswith(SLOW_ELSEWHERE):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each kind


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory) -> Path:
    """An empty MLflow store, its tables made once per test worker: creating them (MLflow's migrations) takes
    seconds, copying the file takes milliseconds, and a copy is what a new store would be."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-store-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_store_template):
    """A throwaway copy of the Kedro project (config and metadata, and an empty MLflow store), with the cwd
    inside it."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(mlflow_store_template, root / "mlflow.db")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # kedro checks it exists; the rlpipe package itself is installed
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session", autouse=True)
def temp_folder_in_pytests_area(tmp_path_factory):
    """The system temp folder, for the whole session and every process it starts, is a folder in pytest's own
    temporary area (which pytest prunes): what the code under test puts in the temp folder (a run-version lock
    before ``data/`` exists, MLflow's and the animation's scratch folders, a crash's leftovers) never stays in
    the machine's /tmp."""
    folder = tmp_path_factory.mktemp("system-temp")
    saved_env, saved_default = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)  # child processes (kedro run, workers) read it
    tempfile.tempdir = str(folder)  # this process had already looked it up
    yield folder
    tempfile.tempdir = saved_default
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env


@pytest.fixture(autouse=True)
def mlflow_state_left_as_found():
    """MLflow keeps a tracking URI, an active experiment and a run stack per process; a test that sets them (or
    runs a Kedro session in-process) must not hand them (or the experiment id it exports) to the next test of the
    same xdist worker. Module-scoped fixtures that run sessions are set up before this one: they keep the state
    themselves (``tests.support.mlflow_state_kept``)."""
    from tests.support import mlflow_state_kept

    with mlflow_state_kept():
        yield
