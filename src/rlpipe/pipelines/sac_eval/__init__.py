"""Evaluate a stored SAC agent: `kedro run --pipeline=sac_eval [--load-versions sac.agent:<version>]`."""

from rlpipe.pipelines.sac_eval.pipeline import create_pipeline

__all__ = ["create_pipeline"]
