"""The train node of every algorithm: the spine's training run (``rlpipe.rl.run.train_agent``) with what only a
Kedro run adds: the project root for relative paths, and videos of the policy during training logged to MLflow."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.utils import find_kedro_project

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, run
from rlpipe.rl.checkpoint import StoredCheckpoint
from rlpipe.rl.training_run import ResumePoint, resolve

logger = logging.getLogger(__name__)


def project_root() -> Path:
    """The Kedro project's root (relative paths in config are under it, not under a notebook's cwd), else the cwd."""
    return find_kedro_project(Path.cwd()) or Path.cwd()


def project_path(path: str) -> Path:
    """A config path under the Kedro project root (absolute paths as given)."""
    return resolve(path, project_root())


def train(config: Any, initial_state: Any, lineage: dict[str, Any], resume: ResumePoint,
          scenarios_train: pd.DataFrame, scenarios_eval: pd.DataFrame, device_data: dict[str, Any] | None = None
          ) -> tuple[StoredCheckpoint, pd.DataFrame, dict[str, Any], dict[str, bytes], pd.DataFrame]:
    """Train from ``resume`` (a fresh start, or the interrupted run it continues): the agent (the final
    checkpoint), the history, the final policy's evaluation, the videos of the policy during training
    (``tracking.video_every_env_steps``; none when 0) and the training scenarios' draw weights at the end.
    ``device_data``: the algorithm's extra input (SAC's prefill transitions, demonstrations for imitation)."""
    videos = TrainingVideos(config, scenarios_eval) if config.tracking.video_every_env_steps else None
    trained = run.train_agent(config, initial_state, lineage, resume, scenarios_train, scenarios_eval, device_data,
                              root=project_root(),
                              on_policy=(config.tracking.video_every_env_steps, videos) if videos else None)
    return (trained.agent, trained.history, trained.final_evaluation, videos.files if videos else {},
            trained.scenario_weights)


class TrainingVideos:
    """``on_policy`` callback of the training core: a short film of the current deterministic policy on the
    animation scenario (``tracking.animation_scenario`` of the eval scenarios), kept as ``step_<env steps>.gif``
    (and ``.mp4`` when an ffmpeg is at hand) and logged to the active MLflow run at once, so a run that fails
    later keeps the videos made so far there. Process 0 films; the others do nothing."""

    def __init__(self, config: Any, scenarios_eval: pd.DataFrame):
        from rlpipe.stages.reporting import EpisodeFilm

        self.label = f"{algorithms.for_config(config).name}.train"
        self.film = EpisodeFilm(config.env, scenarios_eval, config.tracking.animation_scenario) \
            if mesh.is_primary() else None
        self.files: dict[str, bytes] = {}

    def __call__(self, env_steps: int, policy: dict[str, Any]) -> None:
        if self.film is None:
            return
        from rlpipe.stages.reporting import encode

        started = time.perf_counter()
        title = f"{self.film.env_id} scenario {self.film.scenario_id}, {env_steps:,} env steps"
        frames, stride = self.film.frames(policy, title)
        made = {f"step_{env_steps:010d}.{kind}": data for kind, data in encode(frames, stride, mp4=True).items()}
        self.files.update(made)
        _log_to_mlflow(made, f"{self.label.split('.')[0]}/training_videos")
        logger.debug("%s: video at %d env steps in %.2f s", self.label, env_steps, time.perf_counter() - started)


def _log_to_mlflow(files: dict[str, bytes], artifact_path: str) -> None:
    """Files into the active MLflow run (if there is one), as they are made."""
    import sys
    import tempfile

    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return
    with tempfile.TemporaryDirectory(prefix="rlpipe-mlflow-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        mlflow.log_artifacts(tmp, artifact_path=artifact_path)
