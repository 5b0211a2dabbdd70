"""Wiring of the masac pipeline: the SAC pipeline's shape (buffer prefill, the shared train stage) for multi-agent
SAC."""

from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.sac import nodes
from rlpipe.stages import monitoring
from rlpipe.stages.common import algorithm_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return algorithm_pipeline("masac", [
        Node(nodes.prefill_buffer, ["config", "scenarios_train", "agent_store", "lineage"], "prefill_transitions",
             name="prefill_buffer"),
        Node(monitoring.train, ["config", "initial_state", "lineage", "scenarios_train", "scenarios_eval",
                                "prefill_transitions"],
             ["agent", "training_history", "final_evaluation", "training_videos", "scenario_weights"], name="train"),
    ])
