"""Start N local processes of one command as a multi-process JAX run, for a try-out on one machine.

    python -m rlpipe.launch --processes 2 -- kedro run --pipelines=sac

Each process gets JAX's coordinates in its environment (``JAX_COORDINATOR_ADDRESS`` on a free local port,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), which ``rlpipe.rl.mesh.initialize`` reads, and, with
``--devices-per-process``, that many CPU devices. Output lines are prefixed with the process index. If one process
fails, the others get ``--grace`` seconds to stop on their own (they notice the lost peer), then are killed; the
exit status is the first failure's. On a cluster, use the scheduler instead (SLURM's ``srun``, a Kubernetes
indexed Job): see the README.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pump(index: int, stream, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"[p{index}] {line}")
        out.flush()


def launch(command: list[str], processes: int, devices_per_process: int | None = None, grace: float = 60.0,
           out=None) -> int:
    """Run ``command`` as ``processes`` processes of one JAX run; returns the exit status (0 if all succeeded)."""
    out = out or sys.stdout
    address = f"127.0.0.1:{free_port()}"
    children: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    for index in range(processes):
        env = {**os.environ, "JAX_COORDINATOR_ADDRESS": address, "JAX_NUM_PROCESSES": str(processes),
               "JAX_PROCESS_ID": str(index), "PYTHONUNBUFFERED": "1"}
        if devices_per_process:
            flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
            env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out.write(f"rlpipe.launch: process {index} of {processes} is pid {child.pid} (coordinator {address})\n")
        out.flush()
        pump = threading.Thread(target=_pump, args=(index, child.stdout, out), daemon=True)
        pump.start()
        children.append(child)
        pumps.append(pump)

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status, failed_at, reported, killed = 0, None, set(), set()
        while len(reported) < len(children):
            for index, child in enumerate(children):
                code = child.poll()
                if code is None or index in reported:
                    continue
                reported.add(index)
                out.write(f"rlpipe.launch: process {index} exited with status {code}\n")
                out.flush()
                if code != 0 and failed_at is None:
                    status, failed_at = code, time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace:
                for index, child in enumerate(children):
                    if child.poll() is None and child.returncode is None and index not in killed:
                        killed.add(index)
                        out.write(f"rlpipe.launch: process {index} still running {grace:.0f} s after a failure: "
                                  "killing it\n")
                        child.kill()
            time.sleep(0.1)
        return status
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for pump in pumps:
            pump.join(timeout=5)
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlpipe.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", "-n", type=int, required=True, help="how many processes")
    parser.add_argument("--devices-per-process", type=int, default=None,
                        help="CPU devices each process gets (XLA_FLAGS); default: as the environment says")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds the others may take to stop after one process failed, before they are killed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.processes < 1:
        parser.error("give --processes N >= 1 and a command after --")
    return launch(command, args.processes, args.devices_per_process, args.grace)


if __name__ == "__main__":
    sys.exit(main())
