"""Kedro nodes every algorithm pipeline shares. Each is one call of the run's spine (``rlpipe.rl.run``), which
also serves the Python API, the search's trials, the tests and the benchmarks: the pipeline only wires it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.rl import run
from rlpipe.rl.agents import export_policy, export_seed_policies
from rlpipe.rl.eval_tables import evaluation_tables
from rlpipe.rl.training_run import ResumePoint
from rlpipe.stages.monitoring import project_root


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    return run.scenario_tables(config)


def init_agent(config: Any, agent_store: Any) -> tuple[Any, dict[str, Any]]:
    """The initial training state (with ``train.init_from``, from a stored agent) and the run's lineage."""
    return run.initial_state(config, agent_store)


def find_resume(config: Any) -> ResumePoint:
    """Where the run starts (``train.resume``: the interrupted run it continues), decided once for its stages."""
    return run.find_resume(config, project_root())


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
             final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Per-scenario table, summary and per-seed table of the final policy's evaluation."""
    return evaluation_tables(config, policy, scenarios_eval, final_evaluation)


def algorithm_pipeline(algorithm: str, specific: list[Node], namespace: str | None = None,
                       inputs: set[str] | None = None, check: Any = None) -> Pipeline:
    """An algorithm's pipeline in ``namespace`` (default: the algorithm's name; its parameters are
    ``params:<namespace>``): the shared head (config, scenarios, initial state, where the run starts), the
    algorithm's own nodes (which read ``resume`` and must produce ``agent``, ``training_history`` and
    ``final_evaluation``), the shared export, evaluation and reporting. ``inputs``: datasets from outside the
    namespace; ``check(config, key)``: the pipeline's own rules on the config, run in its load_config node."""
    from rlpipe.stages.reporting import reporting_pipeline

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
