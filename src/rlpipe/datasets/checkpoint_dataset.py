"""A training-state checkpoint directory (orbax arrays + meta.json) as a versioned catalog entry.

Saved data is ``{"state": pytree of arrays, "meta": JSON-able dict}``; loading returns the same shape, the
state as nested dicts of numpy arrays.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from rlpipe.rl.checkpoint import load_checkpoint, save_checkpoint


class CheckpointDataset(AbstractVersionedDataset[dict[str, Any], dict[str, Any]]):
    def __init__(self, path: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        # orbax wants absolute local paths
        super().__init__(PurePosixPath(Path(path).absolute().as_posix()), version)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        state, meta = load_checkpoint(self._get_load_path())
        return {"state": state, "meta": meta}

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or set(data) != {"state", "meta"}:
            raise DatasetError("CheckpointDataset saves a dict with exactly the keys 'state' and 'meta'")
        save_checkpoint(self._get_save_path(), data["state"], data["meta"])

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / "meta.json").is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._filepath), "version": self._version}
