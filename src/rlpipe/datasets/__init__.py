"""Kedro datasets for the artifacts pandas and JSON cannot hold: checkpoints, policies, array trees, media."""

from rlpipe.datasets.array_tree_dataset import ArrayTreeDataset
from rlpipe.datasets.bytes_dataset import BytesDataset
from rlpipe.datasets.checkpoint_dataset import CheckpointDataset
from rlpipe.datasets.checkpoint_store_dataset import CheckpointStore, CheckpointStoreDataset
from rlpipe.datasets.demonstrations_dataset import Demonstrations, DemonstrationsDataset
from rlpipe.datasets.files_dataset import FilesDataset
from rlpipe.datasets.metric_history_dataset import MetricHistoryDataset
from rlpipe.datasets.policy_dataset import PolicyDataset
from rlpipe.datasets.run_store_dataset import RunStore, RunStoreDataset

__all__ = ["ArrayTreeDataset", "BytesDataset", "CheckpointDataset", "CheckpointStore", "CheckpointStoreDataset",
           "Demonstrations", "DemonstrationsDataset", "FilesDataset", "MetricHistoryDataset", "PolicyDataset", "RunStore",
           "RunStoreDataset"]
