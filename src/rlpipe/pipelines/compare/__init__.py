"""Stored runs side by side (`kedro run --pipeline=compare`)."""

from rlpipe.pipelines.compare.pipeline import create_pipeline

__all__ = ["create_pipeline"]
