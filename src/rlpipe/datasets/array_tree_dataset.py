"""A flat mapping of named numpy arrays as one ``.npz`` file (loaded with ``allow_pickle=False``)."""

from __future__ import annotations

import io

import numpy as np
from kedro.io.core import DatasetError

from rlpipe.datasets._base import LocalVersionedDataset, write_file_atomically


class ArrayTreeDataset(LocalVersionedDataset[dict[str, np.ndarray]]):
    """``{name: array}`` <-> ``.npz``; object arrays are refused on save and never unpickled on load."""

    def load(self) -> dict[str, np.ndarray]:
        with np.load(self.load_path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def save(self, data: dict[str, np.ndarray]) -> None:
        arrays = {name: np.asarray(value) for name, value in data.items()}
        for name, value in arrays.items():
            if value.dtype == object:
                raise DatasetError(f"array {name!r} has dtype object, which .npz could only store as a pickle")
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_file_atomically(self.save_path, buffer.getvalue())
