"""The pipelines beyond each registered algorithm's standard three (``<algo>``, ``<algo>_eval``, ``<algo>_tune``),
declared by name: an algorithm's variants and recordings, and the project's pipelines that span algorithms.

An ordinary algorithm has none and appears nowhere here: its three pipelines are built from the registry alone
(``rlpipe.pipeline_registry``). This is the one module of the Kedro layer that names algorithms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline

from rlpipe.pipelines.comparison import compare_pipeline
from rlpipe.pipelines.demonstrations import forbid_imitation, imitation_pipeline, recording_pipeline
from rlpipe.pipelines.training import training_pipeline

# algorithm -> the own rules of its training pipeline ``<algo>`` (``check(config, key)``, run in load_config)
TRAINING_RULES: dict[str, Callable[[Any, str], None]] = {
    "ppo": forbid_imitation,  # plain PPO reads no demonstrations: imitation is ppo_imitation's
}

# algorithm -> {pipeline name: its wiring}: the extra pipelines it has (registered when the algorithm is)
ALGORITHM_PIPELINES: dict[str, dict[str, Callable[[], Pipeline]]] = {
    "sac": {"record_demonstrations": lambda: recording_pipeline("sac", "record_demonstrations")},
    "ppo": {"ppo_imitation": imitation_pipeline,
            "ppo_record_demonstrations": lambda: recording_pipeline("ppo", "ppo_record_demonstrations")},
}


def imitation_chain() -> Pipeline:
    """``imitation_chain``: SAC trains the expert, record_demonstrations rolls it out, ppo_imitation learns from the
    demonstrations alone; one run, one DAG (``kedro viz run --pipeline=imitation_chain``)."""
    return (training_pipeline("sac") + recording_pipeline("sac", "record_demonstrations")
            + imitation_pipeline())


# pipeline name -> (the algorithms it needs registered, its wiring)
PROJECT_PIPELINES: dict[str, tuple[tuple[str, ...], Callable[[], Pipeline]]] = {
    "compare": ((), compare_pipeline),
    "imitation_chain": (("sac", "ppo"), imitation_chain),
}


def declared_pipelines(registered: tuple[str, ...]) -> dict[str, Pipeline]:
    """Every declared pipeline whose algorithms are all in ``registered``."""
    out = {name: wire() for algorithm in registered for name, wire in ALGORITHM_PIPELINES.get(algorithm, {}).items()}
    out.update({name: wire() for name, (needs, wire) in PROJECT_PIPELINES.items() if set(needs) <= set(registered)})
    return out
