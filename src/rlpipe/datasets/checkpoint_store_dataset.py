"""Every stored version of an agent entry, as one input: what ``train.init_from`` picks a parent agent from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlpipe.datasets._base import LocalVersionedDataset
from rlpipe.rl.checkpoint import META_FILE, StoredCheckpoint
from rlpipe.rl.errors import ConfigError


class CheckpointStore:
    """The versions of a versioned checkpoint entry (``<filepath>/<version>/<name>``), oldest first."""

    def __init__(self, filepath: str | Path):
        self.filepath = Path(filepath)

    def versions(self) -> list[str]:
        if not self.filepath.is_dir():
            return []
        return sorted(v.name for v in self.filepath.iterdir()
                      if (v / self.filepath.name / META_FILE).is_file())

    def open(self, version: str, key: str) -> tuple[StoredCheckpoint, str]:
        """The stored agent of ``version`` ("latest": the newest) and its version; ``key`` names the setting that
        asked for it in the error if there is none."""
        versions = self.versions()
        if not versions:
            raise ConfigError(key, f"{version!r}: there is no stored agent in {self.filepath} yet")
        if version == "latest":
            version = versions[-1]
        elif version not in versions:
            newest = ", ".join(versions[-3:])
            raise ConfigError(key, f"{version!r} is not a stored agent version in {self.filepath} (newest: {newest})")
        return StoredCheckpoint(self.filepath / version / self.filepath.name), version

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.filepath)!r})"


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
