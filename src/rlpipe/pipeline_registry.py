"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from rlpipe.rl import mesh


def register_pipelines() -> dict[str, Pipeline]:
    """``sac`` (also the default), and every other pipeline under ``rlpipe.pipelines``.

    In a multi-process run the processes other than 0 run each pipeline only up to its ``train`` node, which all
    processes run together; evaluation, export and reports are process 0's (resolved after the context hook has
    joined the processes, so the process index is known here).
    """
    pipelines = find_pipelines(raise_errors=True)
    if not mesh.is_primary():
        pipelines = {name: _up_to_training(name, pipeline) for name, pipeline in pipelines.items()}
    if "sac" in pipelines:  # only the requested pipelines are loaded: with --pipeline=ppo, sac is absent
        pipelines["__default__"] = pipelines["sac"]
    return pipelines


def _up_to_training(name: str, pipeline: Pipeline) -> Pipeline:
    train = f"{name}.train"
    return pipeline.to_nodes(train) if any(node.name == train for node in pipeline.nodes) else pipeline
