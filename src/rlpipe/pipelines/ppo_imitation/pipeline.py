"""Wiring of ppo_imitation: the PPO pipeline (parameters `ppo_imitation`) whose reward comes from a discriminator
trained on a version of `demonstrations`."""

from kedro.pipeline import Node, Pipeline

from rlpipe.stages import monitoring
from rlpipe.stages.common import algorithm_pipeline
from rlpipe.stages.demonstrations import imitation_data, require_imitation


def create_pipeline(**kwargs) -> Pipeline:
    return algorithm_pipeline("ppo", [
        Node(imitation_data, ["config", "demonstrations"], "imitation_data", name="load_demonstrations"),
        Node(monitoring.train, ["config", "initial_state", "lineage", "resume", "scenarios_train", "scenarios_eval",
                                "imitation_data"],
             ["agent", "training_history", "final_evaluation", "training_videos", "scenario_weights"], name="train"),
    ], namespace="ppo_imitation", inputs={"demonstrations"}, check=require_imitation)
