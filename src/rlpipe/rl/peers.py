"""What a process of a multi-process run does once another process is lost: notice it, say which one, since when and
how to continue, in one block, and exit with ``LOST_PROCESS_EXIT_CODE``.

A lost peer shows up three ways, and each ends here with the same block:

- its heartbeat stops (``watch_peers``: a daemon thread beating through JAX's coordination service);
- a collective of the main thread fails (gloo: "Connection closed by peer"), usually seconds before the heartbeat
  says anything: ``losses_named`` around the training asks the watch to decide at once, so no traceback, no
  Kedro hint to re-run nodes and no raw gloo error come first;
- process 0, which holds the coordination service, is gone: JAX's client aborts every other process within a
  second, and a hook on that abort names the coordinator first.

The traceback of the failed collective is logged at debug level (``kedro run -v`` shows it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator

logger = logging.getLogger(__name__)

LOST_PROCESS_EXIT_CODE = 75  # EX_TEMPFAIL: the run can be resumed once every process is back
RESUME_ENV = "RLPIPE_RESUME"  # overrides train.resume (rlpipe.rl.config.rules.resume_mode); auto: continue the
#                             interrupted run of the same config (what the block tells to set, what restarts set)
SUSPECT_SILENCE_S = 4.0  # once a collective failed, a peer this long silent is lost (beats come every second)


class _Watch:
    """This process's watch, shared by its thread and the main thread (one per process: ``watch_peers``)."""

    def __init__(self, me: int, count: int, period_s: float):
        self.me, self.count, self.period_s = me, count, period_s
        self.suspect = threading.Event()  # a collective failed: a short silence is enough to call a peer lost


_watch: _Watch | None = None


def lost(me: int, what: str, since: float) -> None:
    """End this process with the block: ``what`` was lost, last heard of at ``since`` (``time.time()``)."""
    stamp = time.strftime("%H:%M:%S UTC", time.gmtime(since))
    command = " ".join(shlex.quote(a) for a in sys.argv) or "the same command"
    sys.stderr.write(
        f"\nrlpipe: process {me}: {what}. This run cannot go on: start every process again with train.resume=true "
        "to continue from the last checkpoint.\n"
        f"rlpipe: process {me}:   last sign of life: {stamp} ({time.time() - since:.0f} s ago)\n"
        f"rlpipe: process {me}:   to continue, in every process: {RESUME_ENV}=auto {command}\n"
        f"rlpipe: process {me}:   (python -m rlpipe.launch --max-restarts N starts every process again by itself)\n")
    sys.stderr.flush()
    os._exit(LOST_PROCESS_EXIT_CODE)


@contextlib.contextmanager
def losses_named() -> Iterator[None]:
    """Around work with collectives: an exception in a multi-process run whose cause is a lost peer ends this
    process with the block instead (see ``stop_if_a_peer_was_lost``); any other exception goes on as it was."""
    try:
        yield
    except Exception as exc:
        stop_if_a_peer_was_lost(exc)
        raise


def stop_if_a_peer_was_lost(exc: BaseException) -> None:
    """If ``exc`` came from the runtime (a failed collective) of a multi-process run, give the watch a few seconds
    to find a silent peer: it then ends this process with the block. Returns if every peer still beats."""
    watch = _watch
    if watch is None or not _from_the_runtime(exc):
        return
    logger.debug("process %d: a runtime error in a multi-process run; is a peer lost?", watch.me, exc_info=exc)
    watch.suspect.set()
    time.sleep(SUSPECT_SILENCE_S + 3 * watch.period_s)  # the watch thread exits the process meanwhile if so
    watch.suspect.clear()


def _from_the_runtime(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"JaxRuntimeError", "XlaRuntimeError"}) or "Gloo" in str(exc)


def watch_peers(timeout_s: float, period_s: float = 1.0) -> None:
    """End this process, naming the one that was lost, when another process stops beating.

    JAX's own heartbeat ends a survivor too, but only once it reaches a collective or the shutdown barrier, and
    with a message that does not say what to do; a peer killed mid-collective shows only as a gloo error naming an
    address. So every process beats through the coordination service's key-value store from a daemon thread (it
    runs while the main thread is blocked in a collective or waits at the shutdown barrier); a peer silent for
    ``timeout_s`` (``SUSPECT_SILENCE_S`` once a collective failed) ends this process with the block and exit code
    ``LOST_PROCESS_EXIT_CODE``. A lost coordinator (process 0) is noticed sooner, by JAX's client, which aborts
    the process: a hook on that abort names it first.
    """
    global _watch
    from rlpipe.compat import jax_distributed_state

    global_state = jax_distributed_state()  # the client of the coordination service
    client, me, count = global_state.client, global_state.process_id, global_state.num_processes
    closing = threading.Event()  # shutdown has begun: the client may go away under us
    shutdown = global_state.shutdown
    address = getattr(global_state, "coordinator_address", None) if me != 0 else None  # 0 cannot lose itself
    watch = _watch = _Watch(me, count, period_s)

    def stop(what: str, since: float | None = None) -> None:
        lost(me, what, time.time() if since is None else since)

    def shutdown_then_stop_watching():  # jax.distributed.shutdown() and JAX's atexit hook both come here
        closing.set()  # keep watching through the shutdown barrier: a peer lost there must not hang us
        try:
            shutdown()
        except Exception as exc:  # e.g. a failed collective ended the run before the client noticed the loss
            stop_if_the_coordinator_is_gone(address, stop, f"the shutdown failed: {type(exc).__name__}")
            raise

    global_state.shutdown = shutdown_then_stop_watching
    if address:  # JAX's client aborts this process once the coordinator is gone: say so first
        from rlpipe.compat import on_jax_coordination_abort

        on_jax_coordination_abort(lambda: stop_if_the_coordinator_is_gone(
            address, stop, "JAX's coordination client stopped this process"))

    def watch_loop() -> None:
        beats, last_seen = 0, {p: (None, time.monotonic()) for p in range(count) if p != me}
        while True:
            beats += 1
            try:
                client.key_value_set(f"rlpipe/alive/{me}", str(beats), allow_overwrite=True)
                _check(client, last_seen, timeout_s, watch, stop)
            except Exception as exc:
                if closing.is_set():  # the shutdown took the client away: all processes are done
                    return
                stop_if_the_coordinator_is_gone(address, stop, f"the peer watch failed: {type(exc).__name__}")
                stop(f"the coordinator (process 0) was lost ({type(exc).__name__}: {str(exc)[:160]})")
            time.sleep(period_s)

    threading.Thread(target=watch_loop, name="rlpipe-peer-watch", daemon=True).start()


def _check(client, last_seen: dict, timeout_s: float, watch: _Watch, stop) -> None:
    """One look at every peer's beat: ``stop`` naming the first that has been silent for too long."""
    limit = min(timeout_s, SUSPECT_SILENCE_S) if watch.suspect.is_set() else timeout_s
    for peer, (seen, since) in last_seen.items():
        try:
            value = client.key_value_try_get(f"rlpipe/alive/{peer}")
        except Exception:  # not beating yet
            value = None
        now = time.monotonic()
        if value != seen:
            last_seen[peer] = (value, now)
        elif now - since > limit:
            stop(f"process {peer} of {watch.count} was lost (no sign of life for {now - since:.0f} s)",
                 time.time() - (now - since))


def stop_if_the_coordinator_is_gone(address: str | None, stop, how: str) -> None:
    """End this process with ``stop`` naming the coordinator if process 0's coordination service no longer answers
    at ``address``; otherwise return (the trouble has another cause).

    Process 0 holds the coordination service. Once it is gone, JAX's coordination client aborts every other process
    within a second (its fatal log, SIGABRT), long before the peer watch's heartbeat timeout, and nothing would say
    what happened or what to do; ``how`` says what noticed it.
    """
    if address and not _answers(address):
        stop(f"the coordinator (process 0) was lost: its coordination service at {address} no longer answers "
             f"({how})")


def _answers(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something accepts a TCP connection at ``address`` (host:port, an IPv6 host in brackets)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
