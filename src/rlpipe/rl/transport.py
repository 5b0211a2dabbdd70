"""The collectives transport's event thread, moved out of the compute's way (Linux).

Between processes, XLA's CPU collectives go through gloo over TCP. Gloo's event loop is one thread per process
that calls ``epoll_wait`` over and over while collectives are in flight: it takes a CPU whenever one is there. On a
machine with no CPU to spare (a process pinned to one CPU, or as many processes as cores) it then competes with the
very computation that will send the next message, and a collective that the transport finishes in 0.2 ms waits for
the scheduler's next tick instead (about 4 ms here: measured 3.9 ms against 0.18 ms for an all-reduce of 54 KB
between 2 processes pinned to a CPU each, 2026-12-07, AMD EPYC, 2 cores).

:func:`calm_new_event_threads` gives that thread the idle scheduling class (``SCHED_IDLE``): it runs whenever its
CPU has nothing else to do, which is exactly when the computation waits for a message. It touches only threads
that the backend's creation started and that sit in ``epoll_wait``; where that cannot be told (not Linux, no
``/proc``) it does nothing.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_TASKS = Path("/proc/self/task")
# the epoll waits' system call numbers (/proc/<tid>/syscall's first field): epoll_wait, epoll_pwait, epoll_pwait2
_EPOLL_WAIT = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}.get(platform.machine(), set())
_WAIT_FOR_LOOP = 0.5  # seconds to wait for a new thread to reach its event loop


def thread_ids() -> set[int]:
    """This process's threads (empty where ``/proc`` does not say)."""
    try:
        return {int(t) for t in os.listdir(_TASKS)}
    except OSError:
        return set()


def _in_epoll_wait(tid: int) -> bool:
    try:
        return (_TASKS / str(tid) / "syscall").read_text().split()[0] in _EPOLL_WAIT
    except (OSError, IndexError):
        return False


def calm_new_event_threads(before: set[int]) -> list[int]:
    """Give the idle scheduling class to the threads started since ``before`` (see :func:`thread_ids`) that wait
    in ``epoll_wait``; returns their ids. Polls for at most ``_WAIT_FOR_LOOP`` seconds for one to get there."""
    if not hasattr(os, "SCHED_IDLE") or not before or not _EPOLL_WAIT:
        return []
    new = thread_ids() - before
    deadline = time.monotonic() + _WAIT_FOR_LOOP
    found = [t for t in new if _in_epoll_wait(t)]
    while new and not found and time.monotonic() < deadline:
        time.sleep(0.005)
        found = [t for t in new if _in_epoll_wait(t)]
    calmed = []
    for tid in found:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            calmed.append(tid)
        except OSError as error:  # not permitted, or the thread is gone
            logger.debug("could not give thread %d the idle scheduling class: %s", tid, error)
    logger.debug("collectives' event threads given the idle scheduling class: %s", calmed)
    return calmed
