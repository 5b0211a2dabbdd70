"""Wiring of the PPO pipeline: the SAC pipeline's shape without the replay buffer."""

from kedro.pipeline import Node, Pipeline

from rlpipe.stages import monitoring
from rlpipe.stages.common import algorithm_pipeline
from rlpipe.stages.demonstrations import forbid_imitation


def create_pipeline(**kwargs) -> Pipeline:
    return algorithm_pipeline("ppo", [
        Node(monitoring.train, ["config", "initial_state", "lineage", "resume", "scenarios_train", "scenarios_eval"],
             ["agent", "training_history", "final_evaluation", "training_videos",
              "scenario_weights"], name="train"),
    ], check=forbid_imitation)
