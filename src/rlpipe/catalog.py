"""The data catalog of every run: in a multi-process run only process 0 writes artifacts.

The other processes run the same nodes up to training (which all processes do together) and keep what those
nodes produce in memory, so nothing they make reaches the catalog's files or MLflow twice.
"""

from __future__ import annotations

from typing import Any

from kedro.io import DataCatalog

from rlpipe.rl import mesh


class ProcessAwareCatalog(DataCatalog):
    """A ``DataCatalog`` whose saves, outside process 0, stay in memory (and are loaded from there)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._held: dict[str, Any] = {}

    def save(self, ds_name: str, data: Any) -> None:
        if mesh.is_primary():
            super().save(ds_name, data)
        else:
            self._held[ds_name] = data

    def load(self, ds_name: str, version: str | None = None) -> Any:
        if version is None and ds_name in self._held:
            return self._held[ds_name]
        return super().load(ds_name, version)

    def exists(self, ds_name: str) -> bool:
        return ds_name in self._held or super().exists(ds_name)

    def release(self, ds_name: str) -> None:
        self._held.pop(ds_name, None)
        super().release(ds_name)
