"""Wiring of the SAC search: the shared search stages for sac."""

from kedro.pipeline import Pipeline

from rlpipe.stages.tuning import tune_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return tune_pipeline("sac")
