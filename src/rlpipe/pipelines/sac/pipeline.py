"""Wiring of the SAC pipeline: one node per stage, artifacts named in the catalog under ``sac.``."""

from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.sac import nodes
from rlpipe.stages import common
from rlpipe.stages.reporting import reporting_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    stages = Pipeline([
        Node(nodes.load_config, "params:sac", "config", name="load_config"),
        Node(common.generate_scenarios, "config", ["scenarios_train", "scenarios_eval"], name="generate_scenarios"),
        Node(nodes.init_agent, "config", "initial_state", name="init_agent"),
        Node(nodes.prefill_buffer, ["config", "scenarios_train"], "replay_buffer", name="prefill_buffer"),
        Node(nodes.train, ["config", "initial_state", "replay_buffer", "scenarios_train", "scenarios_eval"],
             ["agent", "training_history"], name="train"),
        Node(nodes.export_policy, ["config", "agent"], "policy", name="export_policy"),
        Node(common.evaluate, ["config", "policy", "scenarios_eval"], ["eval_episodes", "eval_summary"],
             name="evaluate"),
    ])
    return Pipeline(stages + reporting_pipeline(), namespace="sac", parameters={"params:sac"},
                    prefix_datasets_with_namespace=True)
