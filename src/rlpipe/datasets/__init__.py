"""Kedro datasets for the artifacts pandas and JSON cannot hold: checkpoints, policies, array trees, media."""

from rlpipe.datasets.array_tree_dataset import ArrayTreeDataset
from rlpipe.datasets.bytes_dataset import BytesDataset
from rlpipe.datasets.checkpoint_dataset import CheckpointDataset
from rlpipe.datasets.policy_dataset import PolicyDataset

__all__ = ["ArrayTreeDataset", "BytesDataset", "CheckpointDataset", "PolicyDataset"]
