"""Memory freed in the middle of the heap goes back to the system when the run asks (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import os

import pytest

from rlpipe.rl import host_memory

libc = ctypes.CDLL(None)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(host_memory._malloc_trim() is None, reason="malloc_trim is glibc's")
def test_memory_freed_between_live_blocks_is_returned_to_the_system():
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    block, count = 4096, 64 * 256  # 64 MiB in 4 KiB blocks: below the mmap threshold, so on the heap
    blocks = [libc.malloc(block) for _ in range(count)]
    for b in blocks:
        ctypes.memset(b, 1, block)  # resident
    kept = blocks[15::16]  # one block in 16 stays live, so the freed ones sit between live ones, not at the top
    for i, b in enumerate(blocks):
        if i % 16 != 15:
            libc.free(b)
    before = _rss_mib()
    assert host_memory.release_freed_memory() is True
    after = _rss_mib()
    for b in kept:
        libc.free(b)
    # 60 MiB were freed between live blocks; glibc keeps them resident until trimmed
    assert before - after > 40, (before, after)


def test_release_is_a_no_op_where_there_is_no_glibc(monkeypatch):
    monkeypatch.setattr(host_memory.sys, "platform", "darwin")
    host_memory._malloc_trim.cache_clear()
    try:
        assert host_memory.release_freed_memory() is False
    finally:
        host_memory._malloc_trim.cache_clear()
