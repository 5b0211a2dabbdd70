"""Wiring of ppo_record_demonstrations: demonstrations of the stored PPO agent (`ppo.agent`)."""

from kedro.pipeline import Pipeline

from rlpipe.stages.demonstrations import recording_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return recording_pipeline("ppo", "ppo_record_demonstrations")
