"""Wiring of record_demonstrations: demonstrations of the stored SAC agent (`sac.agent`, newest or --load-versions)."""

from kedro.pipeline import Pipeline

from rlpipe.stages.demonstrations import recording_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return recording_pipeline("sac", "record_demonstrations")
