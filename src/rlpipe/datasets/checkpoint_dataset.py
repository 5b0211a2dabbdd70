"""A training-state checkpoint directory (orbax arrays + meta.json) as a versioned catalog entry.

Saving a :class:`~rlpipe.rl.checkpoint.StoredCheckpoint` (what the train stage returns: its final checkpoint)
moves that directory into the entry's new version, so the final state exists once; the run's checkpoint folder
keeps a ``FINAL`` note of where it went. Saving ``{"state": pytree of arrays, "meta": JSON-able dict}`` writes a
new checkpoint. Loading returns a ``StoredCheckpoint``: ``agent["meta"]`` at once, ``agent["state"]`` (numpy)
when first used, ``agent.part("training")`` without reading the rest.
"""

from __future__ import annotations

import shutil
from typing import Any

from kedro.io.core import DatasetError

from rlpipe.datasets._base import LocalVersionedDataset
from rlpipe.rl.checkpoint import META_FILE, StoredCheckpoint, save_checkpoint, verify_checkpoint


class CheckpointDataset(LocalVersionedDataset[Any]):
    complete_marker = META_FILE

    def load(self) -> StoredCheckpoint:
        return StoredCheckpoint(self.load_path)

    def save(self, data: Any) -> None:
        target = self.save_path
        if isinstance(data, StoredCheckpoint):
            verify_checkpoint(data.path)  # a damaged final checkpoint must not become the agent
            if target.exists():
                raise DatasetError(f"{target} exists already; artifacts are never overwritten")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = data.path
            shutil.move(str(source), str(target))  # a rename on the same filesystem
            (source.parent / "FINAL").write_text(f"the final checkpoint {source.name} is now {target}\n")
            data.path = target
            return
        if not isinstance(data, dict) or set(data) != {"state", "meta"}:
            raise DatasetError("CheckpointDataset saves a StoredCheckpoint, or a dict with exactly the keys 'state' "
                               "and 'meta'")
        save_checkpoint(target, data["state"], data["meta"])
