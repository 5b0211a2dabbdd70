"""Wiring of the masac_eval pipeline (the shared evaluation stages on `masac.agent`)."""

from kedro.pipeline import Pipeline

from rlpipe.stages.evaluation import evaluation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return evaluation_pipeline("masac")
