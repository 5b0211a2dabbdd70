"""Project pipelines, built from the registry of algorithms (``rlpipe.rl.algorithm.REGISTRY``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from rlpipe.pipelines.declared import TRAINING_RULES, declared_pipelines
from rlpipe.pipelines.evaluation import evaluation_pipeline
from rlpipe.pipelines.training import training_pipeline
from rlpipe.pipelines.tuning import tune_pipeline
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh


def register_pipelines() -> dict[str, Pipeline]:
    """Every registered algorithm's ``<algo>``, ``<algo>_eval`` and ``<algo>_tune``, the pipelines declared in
    ``rlpipe.pipelines.declared``, and ``__default__`` (the registry's default algorithm's, ``rlpipe.rl.algorithm.DEFAULT``).

    In a multi-process run the processes other than 0 run each pipeline only up to its ``train`` nodes (a chain
    has several), which all processes run together; evaluation, export and reports are process 0's (resolved after
    the context hook has joined the processes, so the process index is known here).
    """
    registered = algorithms.names()
    pipelines = {}
    for algorithm in registered:
        pipelines.update(standard_pipelines(algorithm))
    pipelines.update(declared_pipelines(registered))
    if not mesh.is_primary():
        pipelines = {name: _up_to_training(pipeline) for name, pipeline in pipelines.items()}
    pipelines["__default__"] = pipelines[algorithms.DEFAULT]
    return pipelines


def standard_pipelines(algorithm: str) -> dict[str, Pipeline]:
    """The three pipelines every registered algorithm has: training, evaluation of a stored agent, search."""
    return {algorithm: training_pipeline(algorithm, TRAINING_RULES.get(algorithm)),
            f"{algorithm}_eval": evaluation_pipeline(algorithm),
            f"{algorithm}_tune": tune_pipeline(algorithm)}


def _up_to_training(pipeline: Pipeline) -> Pipeline:
    """The nodes up to every training node of ``pipeline`` (``<namespace>.train``: one, or each stage's of a
    chain); a pipeline without one (evaluation, search, comparison) whole."""
    trains = [node.name for node in pipeline.nodes if node.name.rsplit(".", 1)[-1] == "train" and "." in node.name]
    return pipeline.to_nodes(*trains) if trains else pipeline
