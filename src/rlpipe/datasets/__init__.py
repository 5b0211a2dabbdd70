"""Kedro datasets for the artifacts pandas and JSON cannot hold: checkpoints and array trees."""

from rlpipe.datasets.array_tree_dataset import ArrayTreeDataset
from rlpipe.datasets.checkpoint_dataset import CheckpointDataset

__all__ = ["ArrayTreeDataset", "CheckpointDataset"]
