"""Multi-agent SAC on JaxMARL environments: `kedro run --pipeline=masac`."""

from rlpipe.pipelines.masac.pipeline import create_pipeline

__all__ = ["create_pipeline"]
