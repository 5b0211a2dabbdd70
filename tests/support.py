"""Building blocks the tests share: a validated config with its env and scenario batches, a training run through
the run's spine without Kedro (``rlpipe.rl.run``, what every caller uses), a pipeline run in this process (a Kedro
session, as ``kedro run`` makes one, without a new interpreter) and a watched subprocess to wait for lines of its
output."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rlpipe.rl import algorithm, run
from rlpipe.rl.envs import env_spec, scenarios_to_batch


def setup(algo: str, raw: dict, num_devices: int | None = None):
    """(algorithm, config, spec, train batch, eval batch) for ``raw`` validated for ``num_devices`` devices (by
    default this run's), the scenarios drawn as the pipeline draws them."""
    cfg = run.validated_config(algo, raw) if num_devices is None else algorithm.load_config(algo, raw, num_devices)
    spec = env_spec(cfg.env)
    train_table, eval_table = run.scenario_tables(cfg)
    return algorithm.get(algo), cfg, spec, scenarios_to_batch(train_table, spec, "train"), \
        scenarios_to_batch(eval_table, spec, "eval")


def device_data(algo: str, cfg, spec, train_batch):
    """What the train stage gets beside the initial state: SAC's prefill transitions, nothing for PPO (drawn on
    the config's own training scenarios, which ``train_batch`` of ``setup`` holds)."""
    return run.initial_device_data(cfg, run.scenario_tables(cfg)[0])


def train(algo: str, raw: dict, *, evaluate: bool = True, **kwargs):
    """A whole training run as the pipeline does it: ``(TrainResult, config)``. ``kwargs``: the training core's
    callbacks (``on_progress``, ``on_checkpoint``, ``resume``)."""
    cfg = run.validated_config(algo, raw)
    return run.train_in_memory(cfg, evaluate=evaluate, **kwargs), cfg


@contextlib.contextmanager
def mlflow_state_kept():
    """MLflow's tracking URI, active experiment, run stack and exported ids as they were before the block: a Kedro
    session run in this process (kedro-mlflow sets an experiment) hands none of them to later tests."""
    import mlflow
    import mlflow.tracking.fluent as fluent

    saved = {name: os.environ.get(name) for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    uri, experiment = mlflow.get_tracking_uri(), fluent._active_experiment_id
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = experiment
        for name, value in saved.items():  # set_experiment also exports the id to the environment
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        mlflow.set_tracking_uri(uri)


def run_pipeline(project: Path, pipeline: str, runtime_params: dict | None = None,
                 load_versions: dict[str, str] | None = None) -> str:
    """``kedro run --pipelines=<pipeline>`` in this process: the same session (catalog versions, hooks, MLflow run)
    the command line opens, ``runtime_params`` as its ``--params`` and ``load_versions`` as its ``--load-versions``,
    without the seconds a new interpreter spends importing. The session id (the run's catalog version)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=runtime_params) as session:
        session.run(pipeline_names=[pipeline], load_versions=load_versions)
        return session.session_id


class Lines(logging.Handler):
    """The messages of one logger, whatever the logging setup of earlier tests (propagation, levels)."""

    def __init__(self, name: str):
        super().__init__(logging.INFO)
        self.logger, self.messages = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.saved_level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *_):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved_level)

    def containing(self, text: str) -> list[str]:
        return [m for m in self.messages if text in m]


@contextlib.contextmanager
def lines_logged_by(module, monkeypatch):
    """The messages ``module.logger`` logs in the block, also inside a Kedro session: the module's logger is
    replaced by one Kedro's logging setup leaves alone (a session's start resets the handlers of rlpipe's loggers)."""
    with Lines(f"tests.lines_logged_by.{module.__name__}") as lines:
        monkeypatch.setattr(module, "logger", lines.logger)
        yield lines


class Watched:
    """A process whose merged output is read line by line on a thread, so a test can wait for a line."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line (from now on, or already seen) matching ``pattern``; fails after ``timeout`` seconds."""
        regex = re.compile(pattern)
        for line in list(self.lines):
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.text[-4000:]}")
            if line is None:
                pytest.fail(f"the process ended without a line matching {pattern!r}:\n{self.text[-4000:]}")
            if match := regex.search(line):
                return match

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s:\n{self.text[-4000:]}")
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    @property
    def text(self) -> str:
        return "".join(self.lines)
