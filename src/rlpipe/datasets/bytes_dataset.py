"""Raw bytes as a (versioned) file: animations and other rendered media."""

from __future__ import annotations

from rlpipe.datasets._base import LocalVersionedDataset, write_file_atomically


class BytesDataset(LocalVersionedDataset[bytes]):
    def load(self) -> bytes:
        return self.load_path.read_bytes()

    def save(self, data: bytes) -> None:
        write_file_atomically(self.save_path, bytes(data))
