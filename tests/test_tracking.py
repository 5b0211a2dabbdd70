"""Issue 3: MLflow tracking, the served policy, plots, the notebook, kedro-viz's DAG and progress output."""

import contextlib
import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from rlpipe.progress import TrainingProgress
from rlpipe.rl.policies import make_policy_fn
from tests.conftest import PROJECT_ROOT, TINY_SAC
from tests.policy_reference import actions_by_hand
from tests.support import mlflow_state_kept

BIN = Path(sys.executable).parent
SYSTEM_METRICS_SETTING = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")  # before this module's runs


CAPTURED = {}  # tracked_project's stderr and rlpipe.tracking's log lines
pytestmark = pytest.mark.xdist_group("tracking")  # one worker: the module's projects are run once, not per worker


class Tee(io.StringIO):
    """Keeps what is written and passes it on (so a failing run still shows its output)."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream

    def write(self, text):
        self._stream.write(text)
        return super().write(text)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def make_project(tmp_path_factory, label: str, tracking: dict, notebooks: bool = False) -> Path:
    root = tmp_path_factory.mktemp(label) / "project"
    root.mkdir()
    for name in ("pyproject.toml",):
        (root / name).write_bytes((PROJECT_ROOT / name).read_bytes())
    import shutil

    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()
    if notebooks:
        shutil.copytree(PROJECT_ROOT / "notebooks", root / "notebooks")
    tiny = {**TINY_SAC, "tracking": {"system_metrics_interval_s": 0.5, **tracking}}  # a tiny run lasts seconds
    (root / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": tiny}))
    return root


def run_sessions(root: Path, runtime_params: list[dict | None]) -> tuple[list[str], str, list[str]]:
    """One `kedro run --pipelines=sac` per entry (its runtime --params) in this process: the session ids, what went
    to stderr, and rlpipe.tracking's log lines."""
    cwd = os.getcwd()
    os.chdir(root)
    records = Records()
    tracking_logger = logging.getLogger("rlpipe.tracking")
    tracking_logger.addHandler(records)
    level = tracking_logger.level
    tracking_logger.setLevel(logging.INFO)
    stderr = Tee(sys.stderr)
    try:
        bootstrap_project(root)
        session_ids = []
        with contextlib.redirect_stderr(stderr), mlflow_state_kept():  # module-scoped: before the autouse fixture
            for params in runtime_params:
                with KedroSession.create(project_path=root, runtime_params=params) as session:
                    session.run(pipeline_names=["sac"])
                    session_ids.append(session.session_id)
            assert mlflow.active_run() is None  # nothing left open for the next session
    finally:
        tracking_logger.removeHandler(records)
        tracking_logger.setLevel(level)
        os.chdir(cwd)
    return session_ids, stderr.getvalue(), records.lines


@pytest.fixture(scope="module")
def tracked_project(tmp_path_factory):
    """A tiny project run twice in this one process (as a notebook user or pytest would)."""
    root = make_project(tmp_path_factory, "tracked", {"tensorboard": True, "registered_model_name": "tiny-sac"},
                        notebooks=True)
    outputs, stderr, lines = run_sessions(root, [None, None])
    CAPTURED.update(stderr=stderr, lines=lines)
    return root, outputs


@pytest.fixture(scope="module")
def gated_project(tracked_project, tmp_path_factory):
    """Two runs registering on_target, the first with a target any policy meets, the second with one none does;
    no system metrics. After tracked_project's runs (which had them) in this same process."""
    root = make_project(tmp_path_factory, "gated", {"registered_model_name": "tiny-gated", "register": "on_target",
                                                    "system_metrics": False})
    session_ids, _, lines = run_sessions(root, [{"sac": {"tracking": {"target_return": -1e9}}},
                                                {"sac": {"tracking": {"target_return": 1e9}}}])
    return root, session_ids, lines, mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


@pytest.fixture(scope="module")
def client(tracked_project):
    root, _ = tracked_project
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


def runs_of(client):
    exp = client.get_experiment_by_name("rlpipe")
    return sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)


def logged_models(client, run):
    return client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")


def versions(root: Path, rel: str) -> list[str]:
    return sorted(p.name for p in (root / rel).iterdir())


@pytest.mark.slow
def test_two_runs_in_one_process_are_two_mlflow_runs(tracked_project, client):
    root, session_ids = tracked_project
    runs = runs_of(client)
    assert len(runs) == 2
    assert [r.data.tags["run_id"] for r in runs] == session_ids  # the Kedro session id ...
    assert versions(root, "data/06_models/sac/agent") == session_ids  # ... is the catalog save version
    assert all(r.info.status == "FINISHED" and r.info.run_name == f"sac-Pendulum-v1-s3-{r.data.tags['run_id']}"
               for r in runs)


@pytest.mark.slow
def test_params_metrics_and_artifacts(tracked_project, client):
    root, session_ids = tracked_project
    run = runs_of(client)[-1]
    params = run.data.params
    assert params["sac.train.batch_size"] == "16" and params["sac.env.id"] == "Pendulum-v1"
    assert params["sac.train.total_env_steps"] == "320" and params["sac.seed"] == "3"

    history = client.get_metric_history(run.info.run_id, "sac.train.critic_loss")
    # the training history's resolution: a point per iteration here (16 a log interval), stepped by env steps
    assert sorted(m.step for m in history) == list(range(68, 321, 4))
    for name in ("sac.train.actor_loss", "sac.train.temperature"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 64, name
    speed = client.get_metric_history(run.info.run_id, "sac.train.env_steps_per_s")
    assert sorted(m.step for m in speed) == [128, 192, 256, 320]  # per log interval
    summary = json.loads((root / "data/07_model_output/sac/eval_summary.json" / session_ids[-1] /
                          "eval_summary.json").read_text())
    assert run.data.metrics["sac.eval.final.return_mean"] == pytest.approx(summary["return_mean"])
    assert client.get_metric_history(run.info.run_id, "sac.eval.return_mean")[-1].step == 320

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "sac")}
    assert {"sac/learning_curve.png", "sac/eval_returns.png", "sac/policy_animation.gif", "sac/eval_episodes.parquet",
            "sac/eval_summary.json"} <= artifacts


@pytest.mark.slow
def test_plots_and_gif_are_new_versions_each_run(tracked_project):
    root, session_ids = tracked_project
    for rel in ("data/08_reporting/sac/learning_curve.png", "data/08_reporting/sac/eval_returns.png",
                "data/08_reporting/sac/policy_animation.gif"):
        assert versions(root, rel) == session_ids, rel
    gif = root / "data/08_reporting/sac/policy_animation.gif" / session_ids[-1] / "policy_animation.gif"
    from PIL import Image

    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames >= 40  # an actual animation of the 200-step episode


@pytest.mark.slow
def test_tensorboard_scalars_written(tracked_project):
    root, _ = tracked_project
    files = list((root / "data/08_reporting/tensorboard").rglob("events.out.tfevents.*"))
    assert len(files) == 2
    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    data = files[0].read_bytes()
    pos = 0
    while pos < len(data):  # TFRecord framing: length, crc, payload, crc
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        tags |= {v.tag for v in event.summary.value}
        pos += 12 + length + 4
    assert {"train/critic_loss", "train/temperature", "train/env_steps_per_s"} <= tags


@pytest.mark.slow
def test_policy_registered_once_evaluated_quietly(tracked_project, client):
    """register: always (the default): each run's policy model is a new version, registered without mlflow's
    prints; the run's tags and rlpipe's log line say which."""
    runs = runs_of(client)
    by_version = {int(v.version): v for v in client.search_model_versions("name='tiny-sac'")}
    assert sorted(by_version) == [1, 2]
    for number, run in enumerate(runs, start=1):
        assert by_version[number].run_id == run.info.run_id
        assert run.data.tags["rlpipe.registered"] == "true"
        assert run.data.tags["rlpipe.registered_version"] == str(number)
        (logged,) = logged_models(client, run)
        model_id = logged.model_id  # the version is the run's logged model (the SQLite registry keeps no model_id)
        assert logged.name == "sac_policy" and by_version[number].source == f"models:/{model_id}"
        said = f"registered policy model models:/{model_id} as 'tiny-sac' version {number}; it "
        assert [line for line in CAPTURED["lines"] if line.startswith(said) and "@champion" in line]
    assert "already exists" not in CAPTURED["stderr"] and "Created version" not in CAPTURED["stderr"]


@pytest.mark.slow
def test_on_target_registers_only_a_policy_that_meets_the_target(gated_project):
    root, session_ids, lines, gated_client = gated_project
    met, missed = runs_of(gated_client)
    assert [r.data.tags["run_id"] for r in (met, missed)] == session_ids
    versions_ = gated_client.search_model_versions("name='tiny-gated'")
    assert [(int(v.version), v.run_id) for v in versions_] == [(1, met.info.run_id)]
    assert met.data.tags["rlpipe.registered"] == "true" and met.data.tags["rlpipe.registered_version"] == "1"
    assert missed.data.tags["rlpipe.registered"] == "false" and "rlpipe.registered_version" not in missed.data.tags

    logged = logged_models(gated_client, missed)
    assert [m.name for m in logged] == ["sac_policy"]  # logged all the same, only not registered
    mean = missed.data.metrics["sac.eval.final.return_mean"]
    assert any(line.startswith(f"policy model models:/{logged[0].model_id} not registered as 'tiny-gated'")
               and f"{mean:.2f}" in line and "1000000000.00" in line for line in lines), lines


@pytest.mark.slow
def test_system_metrics_logged_when_asked_for(tracked_project, client, gated_project):
    for run in runs_of(client):  # tracking.system_metrics: true, the default
        assert client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage"), run.info.run_id
    _, _, _, gated_client = gated_project
    for run in runs_of(gated_client):  # false, in later runs of the same process
        assert not [k for k in run.data.metrics if k.startswith("system/")], run.data.metrics
    assert os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING") == SYSTEM_METRICS_SETTING  # as it was


@pytest.mark.slow
def test_registered_policy_matches_in_process_policy_in_a_fresh_process(tracked_project, client, tmp_path):
    root, session_ids = tracked_project
    bundle_dir = root / "data/06_models/sac/policy" / session_ids[-1] / "policy"
    from rlpipe.rl.policies import read_policy

    policy = make_policy_fn(read_policy(bundle_dir))
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = (
        "import mlflow, numpy as np, sys\n"
        f"mlflow.set_tracking_uri('sqlite:///{root}/mlflow.db')\n"
        "model = mlflow.pyfunc.load_model('models:/tiny-sac/2')\n"
        f"np.save(sys.argv[1], model.predict(np.load('{tmp_path / 'obs.npy'}')))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "actions.npy")], check=True, timeout=300,
                   cwd=tmp_path)
    served = np.load(tmp_path / "actions.npy")
    np.testing.assert_allclose(served, policy(obs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(served, actions_by_hand(read_policy(bundle_dir), obs), rtol=1e-5, atol=1e-6)
    assert served.shape == (5, 1) and np.abs(served).max() <= 2.0  # Pendulum torque bounds
    assert np.ptp(served) > 0  # the actions depend on the observation: not a constant both sides agree on


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(tracked_project, tmp_path):
    root, session_ids = tracked_project
    from rlpipe.rl.policies import read_policy

    policy = make_policy_fn(read_policy(root / "data/06_models/sac/policy" / session_ids[0] / "policy"))
    port = _free_port()
    # the server runs `uvicorn` from PATH: the venv must be on it, as it is for an activated venv
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "PATH": f"{BIN}:{os.environ['PATH']}"}
    server = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/tiny-sac/1", "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"))
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("model server did not come up:\n" + (tmp_path / "serve.log").read_text()[-3000:])
                time.sleep(0.5)
        obs = [[1.0, 0.0, 0.0], [0.0, 1.0, -2.0]]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps({"inputs": obs}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.load(urllib.request.urlopen(request, timeout=30))
        np.testing.assert_allclose(np.asarray(answer["predictions"]), policy(np.asarray(obs)), rtol=1e-5, atol=1e-6)
        bundle = read_policy(root / "data/06_models/sac/policy" / session_ids[0] / "policy")
        np.testing.assert_allclose(np.asarray(answer["predictions"]), actions_by_hand(bundle, np.asarray(obs)),
                                   rtol=1e-5, atol=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tracked_project):
    import nbformat
    from nbclient import NotebookClient

    root, _ = tracked_project
    nb = nbformat.read(root / "notebooks" / "sac_inspect.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(root / "notebooks")}}).execute()  # raises on any cell error
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "train / 4 eval scenarios" in outputs and "evaluate node said" in outputs


@pytest.mark.slow
def test_kedro_viz_dag_has_every_node_and_dataset(tracked_project, tmp_path):
    root, _ = tracked_project
    result = subprocess.run([str(BIN / "kedro"), "viz", "build", "--include-previews"], cwd=root, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    dag = json.loads((root / "build" / "api" / "pipelines" / "sac").read_text())
    names = {n["name"] for n in dag["nodes"]}
    from rlpipe.pipelines.training import training_pipeline

    pipeline = training_pipeline("sac")
    node_names = {n.name.split(".", 1)[1] for n in pipeline.nodes}  # shown inside the collapsible "sac" group
    dataset_names = set(pipeline.datasets())
    assert node_names <= names, node_names - names
    assert dataset_names <= names, dataset_names - names
    assert "sac" in dag["modular_pipelines"]
    layers = {n.get("layer") for n in dag["nodes"] if n.get("layer")}
    assert {"intermediate", "primary", "models", "model_output", "reporting"} <= layers


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_on_one():
    row = {"env_steps": 500, "total_env_steps": 1000, "env_steps_per_s": 250.0, "episode_return": -300.0,
           "eval_return_mean": float("nan"), "critic_loss": 1.5, "actor_loss": 2.0, "temperature": 0.1}
    plain = io.StringIO()
    from rlpipe.rl.algorithm import get

    with TrainingProgress("sac.train", 1000, get("sac").progress_labels, stream=plain) as progress:  # StringIO is not a terminal
        progress.update(row)
    assert plain.getvalue().strip() == ("[sac.train] env steps 500/1,000 (50%) | ETA 2 s | 250 steps/s | return -300.0 | "
                                        "critic 1.5 | actor 2 | alpha 0.1")
    import rich
    from rich.console import Console

    terminal = io.StringIO()
    saved = rich.get_console()
    rich.reconfigure(file=terminal, force_terminal=True, width=200)
    try:
        with TrainingProgress("sac.train", 1000, stream=terminal, live=True) as progress:
            progress.update(row)
    finally:
        rich._console = saved if isinstance(saved, Console) else None
    assert "500/1000" in terminal.getvalue() and "\x1b[" in terminal.getvalue()  # a rich (ANSI) display


def test_mlflow_starts_runs_without_importing_ipython_and_a_notebook_keeps_its_checks(tmp_path):
    """mlflow's notebook probes import IPython (0.45 s); during a run of a process without IPython they fail at
    once, and afterwards IPython imports again. With IPython loaded (a notebook), the probes run as mlflow wrote them."""
    script = f"""
import sys
import mlflow
from mlflow.tracking.context import registry
from rlpipe.tracking import MlflowRunIsolationHooks

mlflow.set_tracking_uri("sqlite:///{tmp_path / 'mlflow.db'}")
mlflow.set_experiment("ipython-probe")
hooks = MlflowRunIsolationHooks()
assert "IPython" not in sys.modules
hooks._hide_ipython()
with mlflow.start_run():
    tags = registry.resolve_tags()
assert "IPython" in sys.modules and sys.modules["IPython"] is None, "not hidden during the run"
assert tags.get("mlflow.source.type") != "NOTEBOOK", tags
hooks._unhide_ipython()
assert "IPython" not in sys.modules, "still hidden after the run"
import IPython  # importable again
hooks._hide_ipython()
assert sys.modules["IPython"] is IPython, "hid a loaded IPython"
hooks._unhide_ipython()
assert sys.modules["IPython"] is IPython
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") or k == "MLFLOW_DISABLE_TELEMETRY"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
