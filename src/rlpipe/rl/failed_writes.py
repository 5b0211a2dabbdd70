"""A checkpoint write that the disk refused is reported once, by the run's ``CheckpointWriteError``.

When the disk fails under an orbax save, every array write of that save fails too, on orbax's threads and its own
event loop, and each says so: orbax logs an error with a traceback per failed operation, asyncio logs "... exception
was never retrieved" with the array store's whole specification (thousands of characters), and a write that ends
after orbax closed its loop prints "Event loop is closed" with a traceback. :func:`quiet_disk_failures` keeps these
off the console while a checkpoint is written and after its write failed (until a checkpoint is written again), and
only when the reason is the disk (full, read-only, no permission...), which the run's own error then names; any other
failure is printed as before.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# how the array store and the OS name a disk's refusal (ENOSPC, EROFS, EDQUOT, EACCES, EPERM, EIO)
_DISK = re.compile(r"os_error_code='(28|30|122|13|1|5)'|RESOURCE_EXHAUSTED|No space left on device|"
                   r"Read-only file system|Disk quota exceeded|Permission denied")
_quiet = False  # a checkpoint is being written, or one failed since the last one written
_previous_hook: Any = None


class _RefusedWrites(logging.Filter):
    """Drops a record of a write the disk refused while a checkpoint is written or after its write failed (orbax
    writes nothing else in a run; its threads' records rarely name the file, only the refusal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (_quiet and _DISK.search(f"{record.getMessage()} {error!r}"))


_FILTER = _RefusedWrites()


def _unraisable(args: Any) -> None:
    """``sys.unraisablehook``: while or after a failed write, a callback onto orbax's closed event loop is dropped."""
    if not (_quiet and isinstance(args.exc_value, RuntimeError) and str(args.exc_value) == "Event loop is closed"):
        _previous_hook(args)


def _install() -> None:
    global _previous_hook
    for name in ("absl", "asyncio"):  # orbax logs through absl; asyncio reports the writes nobody waited for
        if _FILTER not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_FILTER)
    if _previous_hook is None:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable


@contextmanager
def quiet_disk_failures() -> Iterator[None]:
    """The block writes a checkpoint: the disk's refusals of its writes are not printed, also after the block if the
    block failed (the abandoned writes report themselves when they end or are collected)."""
    global _quiet
    _install()
    _quiet = True
    yield
    _quiet = False  # written: the disk takes writes again, so a refusal from now on is news and is printed
