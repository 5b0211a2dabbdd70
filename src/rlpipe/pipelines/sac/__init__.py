"""The SAC pipeline (namespace ``sac``)."""

from rlpipe.pipelines.sac.pipeline import create_pipeline

__all__ = ["create_pipeline"]
