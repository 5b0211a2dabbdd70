"""Evaluate a stored PPO agent: `kedro run --pipeline=ppo_eval [--load-versions ppo.agent:<version>]`."""

from rlpipe.pipelines.ppo_eval.pipeline import create_pipeline

__all__ = ["create_pipeline"]
