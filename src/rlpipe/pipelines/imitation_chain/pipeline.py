"""Wiring of imitation_chain: SAC trains the expert, record_demonstrations rolls it out, ppo_imitation learns from
the demonstrations alone; one run, one DAG (`kedro viz --pipeline=imitation_chain`)."""

from kedro.pipeline import Pipeline

from rlpipe.pipelines.ppo_imitation.pipeline import create_pipeline as imitation
from rlpipe.pipelines.record_demonstrations.pipeline import create_pipeline as recording
from rlpipe.pipelines.sac.pipeline import create_pipeline as sac


def create_pipeline(**kwargs) -> Pipeline:
    return sac() + recording() + imitation()
