"""The SAC hyperparameter search (`kedro run --pipeline=sac_tune`)."""

from rlpipe.pipelines.sac_tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
