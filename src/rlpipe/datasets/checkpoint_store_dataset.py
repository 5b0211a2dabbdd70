"""Every stored version of an agent entry, as one input: what ``train.init_from`` picks a parent agent from."""

from __future__ import annotations

from typing import Any

from rlpipe.datasets._base import LocalVersionedDataset
from rlpipe.rl.agents import CheckpointStore


class CheckpointStoreDataset(LocalVersionedDataset[Any]):
    """Loads a :class:`CheckpointStore` over the same folder as the agent entry (reads nothing until asked)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        super().__init__(filepath, None, metadata)

    def load(self) -> CheckpointStore:
        return CheckpointStore(self.filepath)

    def save(self, data: Any) -> None:
        raise NotImplementedError("a checkpoint store is read-only: agents are saved through the agent entry")

    def _exists(self) -> bool:
        return True
