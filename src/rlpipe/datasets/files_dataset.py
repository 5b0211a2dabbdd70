"""A versioned folder of named files (videos of one run, say) as one catalog entry."""

from __future__ import annotations

import re
import shutil

from kedro.io.core import DatasetError

from rlpipe.datasets._base import LocalVersionedDataset

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class FilesDataset(LocalVersionedDataset[dict]):
    """Saves ``{file name: bytes}`` as the files of a new folder (written aside, then renamed into place: a
    version that exists is complete, an empty dict is an empty folder); loads the same mapping back."""

    complete_marker = ".complete"

    def load(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.load_path.iterdir()) if not p.name.startswith(".")}

    def save(self, data: dict[str, bytes]) -> None:
        if not isinstance(data, dict):
            raise DatasetError(f"FilesDataset saves a dict of file name -> bytes, got {type(data).__name__}")
        if bad := [name for name in data if not isinstance(name, str) or not _NAME.match(name)]:
            raise DatasetError(f"FilesDataset: {bad[0]!r} is not a plain file name")
        target = self.save_path
        if target.exists():
            raise DatasetError(f"{target} exists already; artifacts are never overwritten")
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name, content in data.items():
            (partial / name).write_bytes(bytes(content))
        (partial / self.complete_marker).write_text("")
        partial.rename(target)
