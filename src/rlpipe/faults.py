"""The one seam where tests inject faults into a running process, so they can kill it at a known point without
racing the clock. Product code marks its points with ``fault_point(name, count)``; nothing happens unless the
point's environment variable asks for it.

Points and their environment variables (the contract the tests use):

- ``after_checkpoint``: ``RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS=N`` pauses a training run after its N-th checkpoint
  (count from 1), printing ``RLPIPE_FAULT: paused after checkpoint N in process P``; with
  ``RLPIPE_FAULT_PROCESS=P`` only process P of a multi-process run pauses.
- ``in_trial``: ``RLPIPE_FAULT_PAUSE_IN_TRIAL=N`` pauses a search worker once trial N has started (its heartbeat
  running), printing ``RLPIPE_FAULT: paused in trial N``.

A paused process waits at most 10 minutes to be killed, then goes on. A process ``rlpipe.launch`` started again
after a loss (``RLPIPE_RESTART_COUNT`` set) never pauses: the fault was its first start's.
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_SECONDS = 600

_VARIABLES = {
    "after_checkpoint": "RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS",
    "in_trial": "RLPIPE_FAULT_PAUSE_IN_TRIAL",
}


def fault_point(name: str, count: int) -> None:
    """Point ``name`` reached for the ``count``-th time (or with that number): pause here if a test asked to."""
    wanted = os.environ.get(_VARIABLES[name])
    if not wanted or int(wanted) != count or os.environ.get("RLPIPE_RESTART_COUNT"):
        return
    if name == "in_trial":
        print(f"RLPIPE_FAULT: paused in trial {count}", file=sys.stderr, flush=True)
    else:
        from rlpipe.rl import mesh

        only = os.environ.get("RLPIPE_FAULT_PROCESS")
        if only and int(only) != mesh.process_index():
            return
        print(f"RLPIPE_FAULT: paused after checkpoint {count} in process {mesh.process_index()}",
              file=sys.stderr, flush=True)
    time.sleep(PAUSE_SECONDS)
