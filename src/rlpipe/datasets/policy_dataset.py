"""A policy bundle (``rlpipe.rl.policies``) as a directory: ``policy.json`` (meta) + ``params.npz`` (weights)."""

from __future__ import annotations

from typing import Any

from rlpipe.datasets._base import LocalVersionedDataset
from rlpipe.rl.policies import META_FILE, read_policy, write_policy


class PolicyDataset(LocalVersionedDataset[dict[str, Any]]):
    complete_marker = META_FILE

    def load(self) -> dict[str, Any]:
        return read_policy(self.load_path)

    def save(self, data: dict[str, Any]) -> None:
        write_policy(self.save_path, data)
