"""The imitation_chain pipeline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
