"""Wiring of the PPO pipeline: the SAC pipeline's shape without the replay buffer."""

from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.ppo import nodes
from rlpipe.stages.common import algorithm_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return algorithm_pipeline("ppo", nodes.load_config, [
        Node(nodes.init_agent, "config", "initial_state", name="init_agent"),
        Node(nodes.train, ["config", "initial_state", "scenarios_train", "scenarios_eval"],
             ["agent", "training_history"], name="train"),
        Node(nodes.export_policy, ["config", "agent"], "policy", name="export_policy"),
    ])
