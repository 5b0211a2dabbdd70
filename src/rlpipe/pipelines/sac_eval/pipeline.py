"""Wiring of the sac_eval pipeline (the shared evaluation stages on `sac.agent`)."""

from kedro.pipeline import Pipeline

from rlpipe.stages.evaluation import evaluation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return evaluation_pipeline("sac")
