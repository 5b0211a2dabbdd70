"""Wiring of the masac pipeline: the SAC pipeline's shape (buffer prefill, the shared train stage) for multi-agent
SAC."""

from kedro.pipeline import Pipeline

from rlpipe.pipelines.sac.pipeline import replay_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return replay_pipeline("masac")
