"""An algorithm's training pipeline (``kedro run --pipelines=<algo>``), built for every registered algorithm.

Its nodes are each one call of the run's spine (``rlpipe.rl.run``), which also serves the Python API, the search's
trials, the tests and the benchmarks: the pipeline only wires it, and adds what only a Kedro run adds (the project
root for relative paths, videos of the policy during training logged to MLflow).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.project import project_root
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, run
from rlpipe.rl.agents import export_policy, export_seed_policies
from rlpipe.rl.checkpoint import StoredCheckpoint
from rlpipe.rl.eval_tables import evaluation_tables
from rlpipe.rl.training_run import ResumePoint
from rlpipe.tracking import live

logger = logging.getLogger(__name__)


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    return run.scenario_tables(config)


def init_agent(config: Any, agent_store: Any) -> tuple[Any, dict[str, Any]]:
    """The initial training state (with ``train.init_from``, from a stored agent) and the run's lineage."""
    return run.initial_state(config, agent_store)


def find_resume(config: Any) -> ResumePoint:
    """Where the run starts (``train.resume``: the interrupted run it continues), decided once for its stages."""
    return run.find_resume(config, project_root())


def prefill_buffer(config: Any, scenarios_train: pd.DataFrame, agent_store: Any, lineage: dict[str, Any],
                   resume: ResumePoint = ResumePoint()) -> dict[str, np.ndarray]:
    """The train node's extra input of an algorithm whose registry entry says ``prefill_buffer`` (a replay buffer's
    start): transitions of uniformly random actions on training scenarios; none when resuming (the checkpoint holds
    the buffer); with ``train.init_from_buffer`` the parent agent's buffer (``lineage`` names it) instead."""
    return run.initial_device_data(config, scenarios_train, agent_store, lineage, resume)


def train(config: Any, initial_state: Any, lineage: dict[str, Any], resume: ResumePoint,
          scenarios_train: pd.DataFrame, scenarios_eval: pd.DataFrame, device_data: dict[str, Any] | None = None
          ) -> tuple[StoredCheckpoint, pd.DataFrame, dict[str, Any], dict[str, bytes], pd.DataFrame]:
    """Train from ``resume`` (a fresh start, or the interrupted run it continues): the agent (the final
    checkpoint), the history, the final policy's evaluation, the videos of the policy during training
    (``tracking.video_every_env_steps``; none when 0) and the training scenarios' draw weights at the end; the
    history reaches the run's MLflow run at each progress line (``rlpipe.tracking.live``).
    ``device_data``: the algorithm's extra input (prefill transitions, demonstrations for imitation)."""
    videos = TrainingVideos(config, scenarios_eval) if config.tracking.video_every_env_steps else None
    trained = run.train_agent(config, initial_state, lineage, resume, scenarios_train, scenarios_eval, device_data,
                              root=project_root(), on_progress=live.progress_callback(),
                              on_policy=(config.tracking.video_every_env_steps, videos) if videos else None)
    return (trained.agent, trained.history, trained.final_evaluation, videos.files if videos else {},
            trained.scenario_weights)


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
             final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Per-scenario table, summary and per-seed table of the final policy's evaluation."""
    return evaluation_tables(config, policy, scenarios_eval, final_evaluation)


class TrainingVideos:
    """``on_policy`` callback of the training core: a short film of the current deterministic policy on the
    animation scenario (``tracking.animation_scenario`` of the eval scenarios), kept as ``step_<env steps>.gif``
    (and ``.mp4`` when an ffmpeg is at hand) and logged to the active MLflow run at once, so a run that fails
    later keeps the videos made so far there. Process 0 films; the others do nothing."""

    def __init__(self, config: Any, scenarios_eval: pd.DataFrame):
        from rlpipe.pipelines.reports import EpisodeFilm

        self.label = f"{algorithms.for_config(config).name}.train"
        self.film = EpisodeFilm(config.env, scenarios_eval, config.tracking.animation_scenario) \
            if mesh.is_primary() else None
        self.files: dict[str, bytes] = {}

    def __call__(self, env_steps: int, policy: dict[str, Any]) -> None:
        if self.film is None:
            return
        from rlpipe.pipelines.reports import encode

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


def train_node(*extra_inputs: str) -> Node:
    """The train node; ``extra_inputs`` (at most one) is the algorithm's extra input (``device_data``)."""
    return Node(train, ["config", "initial_state", "lineage", "resume", "scenarios_train", "scenarios_eval",
                        *extra_inputs],
                ["agent", "training_history", "final_evaluation", "training_videos", "scenario_weights"], name="train")


def training_pipeline(algorithm: str, check: Any = None) -> Pipeline:
    """``<algorithm>``: the shared stages around the train node; an algorithm whose registry entry says
    ``prefill_buffer`` has a ``prefill_buffer`` node whose transitions are the train node's extra input.
    ``check(config, key)``: the pipeline's own rules on the config (see :func:`algorithm_pipeline`)."""
    specific = [train_node()]
    if algorithms.REGISTRY[algorithm].prefill_buffer:
        specific = [Node(prefill_buffer, ["config", "scenarios_train", "agent_store", "lineage", "resume"],
                         "prefill_transitions", name="prefill_buffer"),
                    train_node("prefill_transitions")]
    return algorithm_pipeline(algorithm, specific, check=check)


def algorithm_pipeline(algorithm: str, specific: list[Node], namespace: str | None = None,
                       inputs: set[str] | None = None, check: Any = None) -> Pipeline:
    """An algorithm's pipeline in ``namespace`` (default: the algorithm's name; its parameters are
    ``params:<namespace>``): the shared head (config, scenarios, initial state, where the run starts), the
    algorithm's own nodes (which read ``resume`` and must produce ``agent``, ``training_history`` and
    ``final_evaluation``), the shared export, evaluation and reporting. ``inputs``: datasets from outside the
    namespace; ``check(config, key)``: the pipeline's own rules on the config, run in its load_config node."""
    from rlpipe.pipelines.reports import reporting_pipeline

    namespace = namespace or algorithm

    def load_config(params: dict[str, Any]) -> Any:
        """Validate the algorithm's parameters; any bad key stops the run here, before any work."""
        config = run.validated_config(algorithm, params, namespace)
        if check is not None:
            check(config, namespace)
        return config

    head = [
        Node(load_config, f"params:{namespace}", "config", name="load_config"),
        Node(generate_scenarios, "config", ["scenarios_train", "scenarios_eval"], name="generate_scenarios"),
        Node(init_agent, ["config", "agent_store"], ["initial_state", "lineage"], name="init_agent"),
        Node(find_resume, "config", "resume", name="find_resume"),
    ]
    tail = [
        Node(export_policy, ["config", "agent"], "policy", name="export_policy"),
        Node(export_seed_policies, ["config", "agent"], "seed_policies", name="export_seed_policies"),
        Node(evaluate, ["config", "policy", "scenarios_eval", "final_evaluation"],
             ["eval_episodes", "eval_summary", "eval_seeds"], name="evaluate"),
    ]
    return Pipeline(Pipeline(head + specific + tail) + reporting_pipeline(), namespace=namespace,
                    parameters={f"params:{namespace}"}, inputs=inputs, prefix_datasets_with_namespace=True)
