"""The PPO pipeline (namespace ``ppo``)."""

from rlpipe.pipelines.ppo.pipeline import create_pipeline

__all__ = ["create_pipeline"]
