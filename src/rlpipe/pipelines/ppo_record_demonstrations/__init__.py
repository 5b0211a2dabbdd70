"""The ppo_record_demonstrations pipeline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
