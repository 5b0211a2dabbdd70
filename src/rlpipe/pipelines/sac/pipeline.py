"""Wiring of the SAC pipeline: the shared stages around SAC's own init, buffer prefill, training and export."""

from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.sac import nodes
from rlpipe.stages.common import algorithm_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return algorithm_pipeline("sac", nodes.load_config, [
        Node(nodes.init_agent, "config", "initial_state", name="init_agent"),
        Node(nodes.prefill_buffer, ["config", "scenarios_train"], "replay_buffer", name="prefill_buffer"),
        Node(nodes.train, ["config", "initial_state", "replay_buffer", "scenarios_train", "scenarios_eval"],
             ["agent", "training_history"], name="train"),
        Node(nodes.export_policy, ["config", "agent"], "policy", name="export_policy"),
    ])
