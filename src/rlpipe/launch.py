"""Start N local processes of one command as a multi-process JAX run, for a try-out on one machine, and start them
all again when one is lost.

    python -m rlpipe.launch --processes 2 --max-restarts 3 -- kedro run --pipelines=sac

Each process gets JAX's coordinates in its environment (``JAX_COORDINATOR_ADDRESS`` on a free local port,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), which ``rlpipe.rl.mesh.initialize`` reads, and, with
``--devices-per-process``, that many CPU devices. Each process's XLA thread pool is sized to its share of the
launcher's CPUs (``PJRT_NPROC``, unless the environment sets it), so that the processes' pools do not compete for
every core; with ``--pin-cpus`` each process also runs on its own share (see ``cpu_shares``). Output lines are
prefixed with the process index. If one process fails, the others get ``--grace`` seconds to stop on their own (they
notice the lost peer), then are killed.

A process is *lost* when it ends by a signal or with ``LOST_PROCESS_EXIT_CODE`` (75, what the survivors of a loss
exit with): the run can go on from its last checkpoint. Then, up to ``--max-restarts`` times, every process is
started again (a new coordinator port) after a backoff that doubles each time, with ``RLPIPE_RESUME=auto`` and
``RLPIPE_RESTART_COUNT`` in its environment, so the training continues the interrupted run of the same config.
Any other failure (an error exit: a config error, an exception of the program) would happen again: it ends the
launch at once.

Exit status: 0 once the run succeeded; 75 when a process was lost and no restart is left (the run is resumable);
otherwise the first failure's status. On a cluster, use the scheduler instead (a SLURM batch job with ``--requeue``,
a Kubernetes indexed Job): see docs/distributed.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from rlpipe.rl.peers import LOST_PROCESS_EXIT_CODE, RESUME_ENV

THREADS_ENV = "PJRT_NPROC"  # the size of XLA's CPU thread pool (JAX's CPU client reads it when it starts)
RESTART_ENV = "RLPIPE_RESTART_COUNT"  # how many times the launcher has started the group again (unset at first)
MAX_BACKOFF_S = 60.0  # the doubling backoff stops growing here (unless --restart-backoff is longer itself)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_lost(status: int) -> bool:
    """Whether a process that ended with ``status`` was lost (killed by a signal, or stopped because a peer was),
    rather than failing in a way a restart would repeat. A shell reports a signal as 128 + its number."""
    return status < 0 or status == LOST_PROCESS_EXIT_CODE or status > 128


def cpu_shares(cpus: set[int], processes: int) -> list[set[int]]:
    """``cpus`` split into ``processes`` disjoint shares of consecutive CPUs, as equal as they can be.

    Pinned, each process keeps its CPUs for its own computation (every process's XLA thread pool is sized to its
    share either way: ``threads_per_process``). The launcher pins only when asked: a pinned process cannot move off
    a CPU that other work keeps busy."""
    ordered = sorted(cpus)
    if processes > len(ordered):
        raise ValueError(f"--pin-cpus needs at least one CPU per process: {processes} processes, "
                         f"{len(ordered)} CPU(s) available ({_cpu_list(ordered)})")
    sizes = share_sizes(len(ordered), processes)
    return [set(ordered[end - size:end]) for end, size in zip(itertools.accumulate(sizes), sizes)]


def share_sizes(cpus: int, processes: int) -> list[int]:
    """How many of ``cpus`` CPUs each of ``processes`` processes gets: as equal as they can be, the larger shares
    first (zero when there are more processes than CPUs)."""
    base, extra = divmod(cpus, processes)
    return [base + (index < extra) for index in range(processes)]


def threads_per_process(cpus: int, processes: int) -> list[int]:
    """The XLA threads each of ``processes`` processes gets on ``cpus`` CPUs: its share (``share_sizes``, the CPUs
    ``--pin-cpus`` would give it), at least one (XLA itself gives every device of a process at least one).

    Without it every process sizes its pool to all the CPUs: on a 2-core machine 2 processes then ran 4 busy threads,
    and 2 seeds over 2 processes reached 0.5 to 0.6 times the same seeds on one process with 2 devices; with a share
    each, about as fast (docs/distributed.md has the figures)."""
    return [max(1, size) for size in share_sizes(cpus, processes)]


def _cpu_list(cpus) -> str:
    return ",".join(map(str, sorted(cpus)))


def backoff_seconds(restart: int, base: float) -> float:
    """The wait before the ``restart``-th restart (from 1): ``base``, then doubling, at most ``MAX_BACKOFF_S``."""
    return min(base * 2 ** (restart - 1), max(base, MAX_BACKOFF_S))


@dataclass
class Group:
    """One start of every process of the command."""

    address: str
    children: list[subprocess.Popen] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)


def _pump(index: int, stream, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"[p{index}] {line}")
        out.flush()


def _say(out, line: str) -> None:
    out.write(f"rlpipe.launch: {line}\n")
    out.flush()


def _popen_on(cpus: set[int] | None, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``command``, on ``cpus`` if given: this thread runs on them while it starts the child, which inherits
    them (with every thread it will start), then goes back to its own CPUs."""
    own = os.sched_getaffinity(0) if cpus else None
    try:
        if cpus:
            os.sched_setaffinity(0, cpus)
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        if own:
            os.sched_setaffinity(0, own)


def _start(command: list[str], processes: int, devices_per_process: int | None, extra_env: dict[str, str],
           out, shares: list[set[int]] | None = None) -> Group:
    group = Group(f"127.0.0.1:{free_port()}")
    threads = threads_per_process(len(os.sched_getaffinity(0)), processes)  # pinned: the sizes of ``shares``
    for index in range(processes):
        env = {THREADS_ENV: str(threads[index]), **os.environ, **extra_env,
               "JAX_COORDINATOR_ADDRESS": group.address, "JAX_NUM_PROCESSES": str(processes),
               "JAX_PROCESS_ID": str(index), "PYTHONUNBUFFERED": "1"}
        if devices_per_process:
            flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
            env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
        child = _popen_on(shares[index] if shares else None, command, env)
        on = f", CPUs {_cpu_list(shares[index])}" if shares else ""
        on += f", XLA threads {env[THREADS_ENV]}"
        _say(out, f"process {index} of {processes} is pid {child.pid} (coordinator {group.address}{on})")
        pump = threading.Thread(target=_pump, args=(index, child.stdout, out), daemon=True)
        pump.start()
        group.children.append(child)
        group.pumps.append(pump)
    return group


def _supervise(group: Group, grace: float, out) -> tuple[int, int] | None:
    """Wait for every process of ``group`` to end; the first failure (process index, status), or None if all
    succeeded. After a failure the others get ``grace`` seconds to stop on their own, then are killed."""
    failure, failed_at, reported, killed = None, None, set(), set()
    while len(reported) < len(group.children):
        for index, child in enumerate(group.children):
            code = child.poll()
            if code is None or index in reported:
                continue
            reported.add(index)
            _say(out, f"process {index} exited with status {code}")
            if code != 0 and failure is None:
                failure, failed_at = (index, code), time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace:
            for index, child in enumerate(group.children):
                if child.poll() is None and index not in killed:
                    killed.add(index)
                    _say(out, f"process {index} still running {grace:.0f} s after a failure: killing it")
                    child.kill()
        time.sleep(0.1)
    return failure


def _end(group: Group) -> None:
    """Nothing of ``group`` left running, its output read to the end."""
    for child in group.children:
        if child.poll() is None:
            child.kill()
        child.wait()
    for pump in group.pumps:
        pump.join(timeout=5)


def launch(command: list[str], processes: int, devices_per_process: int | None = None, grace: float = 60.0,
           out=None, max_restarts: int = 0, restart_backoff: float = 2.0, pin_cpus: bool = False) -> int:
    """Run ``command`` as ``processes`` processes of one JAX run, started again up to ``max_restarts`` times when
    a process is lost; returns the exit status (see the module's docstring)."""
    out = out or sys.stdout
    shares = cpu_shares(os.sched_getaffinity(0), processes) if pin_cpus else None
    current: list[Group] = []
    interrupted = threading.Event()  # the launcher was asked to stop: pass it on, never restart

    def forward(signum, _frame):
        interrupted.set()
        for group in current:
            for child in group.children:
                if child.poll() is None:
                    child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        restarts = 0
        while True:
            extra = {RESUME_ENV: "auto", RESTART_ENV: str(restarts)} if restarts else {}
            current[:] = [_start(command, processes, devices_per_process, extra, out, shares)]
            try:
                failure = _supervise(current[0], grace, out)
            finally:
                _end(current[0])
            if failure is None:
                return 0
            index, status = failure
            if interrupted.is_set() or not is_lost(status):
                return status
            if restarts >= max_restarts:
                _say(out, _no_restart_left(index, status, restarts))
                return LOST_PROCESS_EXIT_CODE
            restarts += 1
            delay = backoff_seconds(restarts, restart_backoff)
            _say(out, f"process {index} exited with status {status}; restart {restarts} of {max_restarts} in "
                      f"{delay:g} s, from the last checkpoint")
            if interrupted.wait(delay):
                _say(out, "stopped before the restart")
                return LOST_PROCESS_EXIT_CODE
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _no_restart_left(index: int, status: int, restarts: int) -> str:
    how = "no restart was allowed (--max-restarts 0)" if not restarts else \
        f"it was lost again after {restarts} restart(s), all that --max-restarts allows"
    return (f"process {index} exited with status {status}; {how}: stopping with status {LOST_PROCESS_EXIT_CODE}. "
            f"The run can go on from its last checkpoint: run the same command again with {RESUME_ENV}=auto")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (the usage itself is a ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(prog="python -m rlpipe.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", "-n", type=int, required=True, help="how many processes")
    parser.add_argument("--devices-per-process", type=int, default=None,
                        help="CPU devices each process gets (XLA_FLAGS); default: as the environment says")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds the others may take to stop after one process failed, before they are killed")
    parser.add_argument("--max-restarts", type=non_negative_int, default=0,
                        help="how many times to start every process again when one is lost (default 0)")
    parser.add_argument("--restart-backoff", type=float, default=2.0,
                        help="seconds before the first restart, doubling for each further one (default 2)")
    parser.add_argument("--pin-cpus", action="store_true",
                        help="run each process on its own share of the CPUs (each keeps its CPUs for its own "
                             "computation, and cannot move off one that other work keeps busy)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.processes < 1:
        parser.error("give --processes N >= 1 and a command after --")
    if args.restart_backoff < 0:
        parser.error(f"argument --restart-backoff: must be 0 or more, not {args.restart_backoff:g}")
    if args.pin_cpus:
        try:
            cpu_shares(os.sched_getaffinity(0), args.processes)
        except ValueError as error:
            parser.error(f"argument {error}")
    return launch(command, args.processes, args.devices_per_process, args.grace, max_restarts=args.max_restarts,
                  restart_backoff=args.restart_backoff, pin_cpus=args.pin_cpus)


if __name__ == "__main__":
    sys.exit(main())
