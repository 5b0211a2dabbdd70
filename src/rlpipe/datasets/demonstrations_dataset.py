"""Demonstrations: a Parquet table of steps whose file metadata says where they came from (source agent, env)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from rlpipe.datasets._base import LocalVersionedDataset, write_file_atomically
from rlpipe.rl.errors import ConfigError

META_KEY = b"rlpipe"


def read_demonstrations(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and its ``rlpipe`` metadata (also as ``table.attrs["rlpipe"]``)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    frame = table.to_pandas()
    frame.attrs["rlpipe"] = meta
    return frame, meta


class Demonstrations:
    """The versions of a demonstrations entry (``<filepath>/<version>/<name>``): the one Kedro resolved for this run
    (``latest``, or ``--load-versions``) and any other by name. Reads nothing until :meth:`open`."""

    def __init__(self, filepath: Path, resolved: str | None):
        self.filepath = filepath
        self.resolved = resolved

    def versions(self) -> list[str]:
        if not self.filepath.is_dir():
            return []
        return sorted(v.name for v in self.filepath.iterdir() if (v / self.filepath.name).is_file())

    def open(self, version: str, key: str) -> tuple[pd.DataFrame, dict[str, Any], str, Path]:
        """``(table, meta, version, file)`` of ``version`` ("latest": the resolved one); ``key`` names the setting
        that asked for it in the error if there is no such version."""
        versions = self.versions()
        if not versions:
            raise ConfigError(key, f"no demonstrations are recorded in {self.filepath} yet: run "
                                   "`kedro run --pipelines=record_demonstrations` first")
        if version == "latest":
            version = self.resolved or versions[-1]
        if version not in versions:
            newest = ", ".join(versions[-3:])
            raise ConfigError(key, f"{version!r} is not a demonstrations version in {self.filepath} (newest: "
                                   f"{newest})")
        path = self.filepath / version / self.filepath.name
        table, meta = read_demonstrations(path)
        return table, meta, version, path

    def __repr__(self) -> str:
        return f"Demonstrations({str(self.filepath)!r}, resolved={self.resolved!r})"


class DemonstrationsDataset(LocalVersionedDataset[Any]):
    """Saves a DataFrame (its ``attrs["rlpipe"]`` into the Parquet file's metadata); loads a
    :class:`Demonstrations` handle over every version, so a missing version is the reader's clear error."""

    def load(self) -> Demonstrations:
        try:
            resolved = self.load_path.parent.name
        except DatasetError:  # nothing recorded yet: the node that opens it says so, naming its setting
            resolved = None
        return Demonstrations(Path(str(self.filepath)), resolved)

    def save(self, data: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(data, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[META_KEY] = json.dumps(data.attrs.get("rlpipe", {}), sort_keys=True).encode()
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(meta), buffer)
        write_file_atomically(self.save_path, buffer.getvalue())

    def _exists(self) -> bool:
        return True
