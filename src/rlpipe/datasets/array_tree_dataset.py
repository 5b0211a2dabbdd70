"""A flat mapping of named numpy arrays as one ``.npz`` file (loaded with ``allow_pickle=False``)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version


class ArrayTreeDataset(AbstractVersionedDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """``{name: array}`` <-> ``.npz``; object arrays are refused on save and never unpickled on load."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(PurePosixPath(Path(filepath).absolute().as_posix()), version)
        self.metadata = metadata

    def load(self) -> dict[str, np.ndarray]:
        with np.load(self._get_load_path(), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def save(self, data: dict[str, np.ndarray]) -> None:
        arrays = {name: np.asarray(value) for name, value in data.items()}
        for name, value in arrays.items():
            if value.dtype == object:
                raise DatasetError(f"array {name!r} has dtype object, which .npz could only store as a pickle")
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as f:
            np.savez(f, **arrays)
        partial.rename(path)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
