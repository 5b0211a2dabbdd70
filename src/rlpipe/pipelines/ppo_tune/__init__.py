"""The PPO hyperparameter search (`kedro run --pipeline=ppo_tune`)."""

from rlpipe.pipelines.ppo_tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
