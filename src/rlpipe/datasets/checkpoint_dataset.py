"""A training-state checkpoint directory (orbax arrays + meta.json) as a versioned catalog entry.

Saved data is ``{"state": pytree of arrays, "meta": JSON-able dict}``; loading returns the same shape, the
state as nested dicts of numpy arrays.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import DatasetError

from rlpipe.datasets._base import LocalVersionedDataset
from rlpipe.rl.checkpoint import META_FILE, load_checkpoint, save_checkpoint


class CheckpointDataset(LocalVersionedDataset[dict[str, Any]]):
    complete_marker = META_FILE

    def load(self) -> dict[str, Any]:
        state, meta = load_checkpoint(self.load_path)
        return {"state": state, "meta": meta}

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or set(data) != {"state", "meta"}:
            raise DatasetError("CheckpointDataset saves a dict with exactly the keys 'state' and 'meta'")
        save_checkpoint(self.save_path, data["state"], data["meta"])
