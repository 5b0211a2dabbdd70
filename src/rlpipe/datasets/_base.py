"""What the project's file datasets share: local absolute paths, versioning, completeness checks."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from rlpipe.compat import dataset_filepath, dataset_load_path, dataset_save_path, dataset_version

T = TypeVar("T")


class LocalVersionedDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """A file (or, with ``complete_marker``, a directory) on the local disk, optionally versioned.

    Paths are made absolute at construction (orbax needs that); writers put data under a temporary name and rename
    it into place, so a version that exists is always complete.
    """

    complete_marker: str | None = None  # for directory artifacts: the file written last

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(PurePosixPath(Path(filepath).absolute().as_posix()), version)
        self.metadata = metadata

    @property
    def filepath(self) -> PurePosixPath:
        """The configured path (a versioned dataset's versions are folders below it)."""
        return dataset_filepath(self)

    @property
    def load_path(self) -> Path:
        return Path(dataset_load_path(self))

    @property
    def save_path(self) -> Path:
        return Path(dataset_save_path(self))

    def _exists(self) -> bool:
        try:
            path = self.load_path
        except DatasetError:
            return False
        return (path / self.complete_marker).is_file() if self.complete_marker else path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self.filepath), "version": dataset_version(self)}


def write_file_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.rename(path)
