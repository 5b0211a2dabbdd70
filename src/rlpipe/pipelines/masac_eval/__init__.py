"""Evaluate a stored multi-agent SAC agent: `kedro run --pipeline=masac_eval [--load-versions masac.agent:<version>]`."""

from rlpipe.pipelines.masac_eval.pipeline import create_pipeline

__all__ = ["create_pipeline"]
