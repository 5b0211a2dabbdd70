"""Wiring of the SAC pipeline: the shared stages around SAC's buffer prefill and the shared train stage."""

from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.sac import nodes
from rlpipe.stages import monitoring
from rlpipe.stages.common import algorithm_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return replay_pipeline("sac")


def replay_pipeline(algorithm: str) -> Pipeline:
    """The pipeline of an off-policy algorithm with SAC's replay buffer (sac, masac): the shared stages around the
    buffer prefill and the shared train stage."""
    return algorithm_pipeline(algorithm, [
        Node(nodes.prefill_buffer, ["config", "scenarios_train", "agent_store", "lineage", "resume"],
             "prefill_transitions", name="prefill_buffer"),
        Node(monitoring.train, ["config", "initial_state", "lineage", "resume", "scenarios_train", "scenarios_eval",
                                "prefill_transitions"],
             ["agent", "training_history", "final_evaluation", "training_videos",
              "scenario_weights"], name="train"),
    ])
