"""The collectives transport's event thread gets the idle scheduling class (rlpipe.rl.transport): in-process with
a thread of our own in epoll_wait, and in a real 2-process run on gloo, where it is what makes an all-reduce between
processes pinned to a CPU each cost the transport's time instead of a scheduler tick."""

from __future__ import annotations

import os
import re
import select
import sys
import threading

import pytest

from rlpipe.rl import transport
from tests.test_distributed import started, start  # noqa: F401 (the fixture that kills what a test starts)

pytestmark = pytest.mark.skipif(not (hasattr(os, "SCHED_IDLE") and transport.thread_ids()
                                     and transport._EPOLL_WAIT), reason="needs Linux's /proc and SCHED_IDLE")


def _thread(target) -> tuple[threading.Thread, int]:
    ready, tid = threading.Event(), []

    def run():
        tid.append(threading.get_native_id())
        ready.set()
        target()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread, tid[0]


def test_only_new_threads_in_epoll_wait_get_the_idle_class():
    waker_read, waker_write = os.pipe()
    release = threading.Event()
    old, old_tid = _thread(release.wait)  # there before: never touched
    before = transport.thread_ids()
    poller = select.epoll()
    poller.register(waker_read, select.EPOLLIN)
    looping, loop_tid = _thread(lambda: poller.poll(30))  # an event loop: in epoll_wait until the pipe wakes it
    waiting, wait_tid = _thread(release.wait)  # new, but waiting on a lock
    try:
        calmed = transport.calm_new_event_threads(before)
        assert calmed == [loop_tid]
        assert os.sched_getscheduler(loop_tid) == os.SCHED_IDLE
        assert os.sched_getscheduler(wait_tid) == os.SCHED_OTHER
        assert os.sched_getscheduler(old_tid) == os.SCHED_OTHER
        assert transport.calm_new_event_threads(set()) == []  # nothing known from before: nothing done
    finally:
        os.write(waker_write, b"x")
        release.set()
        for thread in (looping, waiting, old):
            thread.join(10)
        poller.close()
        os.close(waker_read)
        os.close(waker_write)


REPORT = """
import os, jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
from rlpipe.rl import mesh
mesh.initialize(None)
grid = mesh.make_mesh()
total = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, mesh.AXIS), mesh=grid, in_specs=P(mesh.AXIS), out_specs=P()))
x = jax.make_array_from_callback((2,), jax.sharding.NamedSharding(grid, P(mesh.AXIS)), lambda i: np.ones(2)[i])
tids = [int(t) for t in os.listdir("/proc/self/task")]
idle = [t for t in tids if os.sched_getscheduler(t) == os.SCHED_IDLE]
print(f"process {jax.process_index()}: sum {float(total(x)[0])}, {len(idle)} idle of {len(tids)} threads", flush=True)
"""


@pytest.mark.slow
def test_in_a_two_process_run_each_process_gives_its_gloo_event_thread_the_idle_class(tmp_path, started):  # noqa: F811
    run = start(started, tmp_path, [sys.executable, "-m", "rlpipe.launch", "--processes", "2", "--devices-per-process",
                                    "1", "--grace", "30", "--", sys.executable, "-c", REPORT])
    for process in (0, 1):
        line = run.wait_for(rf"process {process}: sum ([\d.]+), (\d+) idle of (\d+) threads", timeout=120)
        assert float(line.group(1)) == 2.0  # the all-reduce went through
        assert int(line.group(2)) == 1, run.text[-3000:]  # gloo's event loop, and nothing else
    assert run.finish(timeout=60) == 0, run.text[-3000:]
    assert not re.search(r"Traceback", run.text)
