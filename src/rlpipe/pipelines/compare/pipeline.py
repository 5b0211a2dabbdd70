"""Wiring of the comparison: the compare stage."""

from kedro.pipeline import Pipeline

from rlpipe.stages.compare import compare_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return compare_pipeline()
