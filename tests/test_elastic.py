"""Runs that restart themselves: ``python -m rlpipe.launch --max-restarts N`` starts every process again when one is
lost, the restarted run continues from the last checkpoint and ends bitwise as an uninterrupted one; a lost process
says so in one block, without a traceback, and everything exits 75 when the run is resumable.

The launcher's own decisions are checked on tiny stand-in commands (a Python one-liner that kills itself), in
seconds; the real two-process runs are slow. Every wait is for a line of output or a process exit, bounded by a
timeout; every process started is killed at the end if it is still running."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time

import pytest

from rlpipe import launch
from rlpipe.rl.mesh import LOST_PROCESS_EXIT_CODE
from tests.support import run_pipeline
from tests.test_distributed import (
    KEDRO,
    KILL_SAC,
    LONG_STEPS,
    PYTHON,
    assert_bitwise_equal,
    start,
    started,  # noqa: F401 - the fixture, used by name
    trained_steps,
    training_state,
    versions,
    write_params,
)


def launch_command(max_restarts: int) -> list[str]:
    return [PYTHON, "-m", "rlpipe.launch", "--processes", "2", "--devices-per-process", "1", "--grace", "90",
            "--max-restarts", str(max_restarts), "--restart-backoff", "1", "--", KEDRO, "run", "--pipelines=sac"]


# A stand-in for a run's process: prints what the launcher gave it, then ends as its first argument says for the
# start named by RLPIPE_RESTART_COUNT (unset: 0): "kill" (SIGKILL itself), "ok" (exit 0) or an exit status.
STAND_IN = """
import os, signal, sys
start = int(os.environ.get("RLPIPE_RESTART_COUNT", "0"))
print("start", start, "process", os.environ["JAX_PROCESS_ID"], "coordinator", os.environ["JAX_COORDINATOR_ADDRESS"],
      "resume", os.environ.get("RLPIPE_RESUME", "-"), flush=True)
plan = sys.argv[1].split(",")
what = plan[min(start, len(plan) - 1)]
if what == "kill" and os.environ["JAX_PROCESS_ID"] == "1":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(0 if what in ("ok", "kill") else int(what))
"""


def stand_in(plan: str, max_restarts: int) -> tuple[int, str]:
    out = io.StringIO()
    status = launch.launch([PYTHON, "-c", STAND_IN, plan], 2, out=out, max_restarts=max_restarts,
                           restart_backoff=0.0)
    return status, out.getvalue()


def test_a_lost_process_restarts_every_process_with_a_new_port_and_resume_auto():
    status, text = stand_in("kill,ok", max_restarts=2)
    assert status == 0, text
    assert re.search(r"^rlpipe\.launch: process 1 exited with status -9; restart 1 of 2 in 0 s, from the last "
                     r"checkpoint$", text, re.MULTILINE), text
    assert "restart 2 of 2" not in text  # the second start succeeded: one restart was enough
    starts = re.findall(r"start (\d) process (\d) coordinator (\S+) resume (\S+)", text)
    assert sorted((s, p, r) for s, p, _, r in starts) == [("0", "0", "-"), ("0", "1", "-"),
                                                          ("1", "0", "auto"), ("1", "1", "auto")]
    ports = {s: {a for s2, _, a, _ in starts if s2 == s} for s in ("0", "1")}
    assert len(ports["0"]) == len(ports["1"]) == 1 and ports["0"] != ports["1"]  # a new coordinator per start


def test_a_restart_loop_that_keeps_failing_stops_after_n_with_status_75():
    status, text = stand_in("kill", max_restarts=2)
    assert status == LOST_PROCESS_EXIT_CODE, text
    assert len(re.findall(r"; restart \d of 2 in", text)) == 2
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"rlpipe\.launch: process 1 exited with status -9; it was lost again after 2 restart\(s\), "
                        r"all that --max-restarts allows: stopping with status 75\. The run can go on from its last "
                        r"checkpoint: run the same command again with RLPIPE_RESUME=auto", last), last
    assert len(re.findall(r"^\[p0\] start", text, re.MULTILINE)) == 3  # the first start and two restarts, no more


def test_a_failure_that_is_no_loss_is_not_restarted_and_keeps_its_status():
    status, text = stand_in("3", max_restarts=2)  # e.g. an environment's error: it would happen again
    assert status == 3, text
    assert "restart" not in text and len(re.findall(r"^\[p\d\] start", text, re.MULTILINE)) == 2


def test_a_lost_process_without_restarts_exits_75_and_says_the_run_can_go_on():
    status, text = stand_in("kill", max_restarts=0)
    assert status == LOST_PROCESS_EXIT_CODE, text
    assert "no restart was allowed (--max-restarts 0): stopping with status 75" in text


def test_a_negative_max_restarts_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        launch.main(["--processes", "2", "--max-restarts", "-1", "--", "true"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == "python -m rlpipe.launch: error: argument --max-restarts: must be 0 or more, not -1 (see --help)\n"


def test_the_backoff_doubles_up_to_a_minute():
    assert [launch.backoff_seconds(k, 2.0) for k in (1, 2, 3, 6, 7)] == [2.0, 4.0, 8.0, 60.0, 60.0]
    assert launch.backoff_seconds(3, 90.0) == 90.0  # a longer base than the cap stays as asked


def test_pinned_processes_each_run_on_their_own_share_of_the_cpus():
    assert launch.cpu_shares({0, 1, 2, 3, 4}, 2) == [{0, 1, 2}, {3, 4}]
    assert launch.cpu_shares({2, 5}, 2) == [{2}, {5}]
    with pytest.raises(ValueError, match=r"3 processes, 2 CPU\(s\) available \(0,1\)"):
        launch.cpu_shares({0, 1}, 3)
    here = os.sched_getaffinity(0)
    if len(here) < 2:
        pytest.skip("one CPU available: nothing to share")
    out = io.StringIO()
    show = "import os; print('cpus', sorted(os.sched_getaffinity(0)), flush=True)"
    assert launch.launch([PYTHON, "-c", show], 2, out=out, pin_cpus=True) == 0
    seen = [set(json.loads(cpus)) for cpus in re.findall(r"^\[p\d\] cpus (\[.*\])$", out.getvalue(), re.MULTILINE)]
    assert len(seen) == 2 and not seen[0] & seen[1] and seen[0] | seen[1] == here, out.getvalue()
    assert os.sched_getaffinity(0) == here  # the launcher itself is back on all its CPUs


# A stand-in that prints the size the launcher gave its XLA thread pool and the pool it got once JAX computed.
SHOW_THREADS = """
import os
import jax, jax.numpy as jnp
jax.jit(lambda x: x @ x)(jnp.ones((64, 64))).block_until_ready()
pool = sum(open(f"/proc/self/task/{t}/comm").read().strip() == "tf_XLAEigen" for t in os.listdir("/proc/self/task"))
print("PJRT_NPROC", os.environ.get("PJRT_NPROC"), "pool", pool, flush=True)
"""


def _threads_seen(text: str) -> list[tuple[str, int]]:
    return sorted((n, int(p)) for n, p in re.findall(r"^\[p\d\] PJRT_NPROC (\S+) pool (\d+)$", text, re.MULTILINE))


def test_each_process_sizes_its_xla_thread_pool_to_its_share_of_the_cpus(monkeypatch):
    assert [launch.threads_per_process(c, p) for c, p in ((2, 2), (8, 2), (8, 3), (5, 2), (1, 2))] == \
        [[1, 1], [4, 4], [3, 3, 2], [3, 2], [1, 1]]  # every CPU used, none twice, at least one thread each
    monkeypatch.delenv("PJRT_NPROC", raising=False)
    shares = launch.threads_per_process(len(os.sched_getaffinity(0)), 2)
    out = io.StringIO()
    assert launch.launch([PYTHON, "-c", SHOW_THREADS], 2, devices_per_process=1, out=out) == 0
    assert _threads_seen(out.getvalue()) == sorted((str(n), n) for n in shares), out.getvalue()
    for index, share in enumerate(shares):
        assert re.search(rf"process {index} of 2 is pid \d+ \(coordinator \S+, XLA threads {share}\)", out.getvalue())
    monkeypatch.setenv("PJRT_NPROC", "3")  # the user's own choice is kept
    out = io.StringIO()
    assert launch.launch([PYTHON, "-c", SHOW_THREADS], 2, devices_per_process=1, out=out) == 0
    assert _threads_seen(out.getvalue()) == [("3", 3)] * 2, out.getvalue()


def test_more_pinned_processes_than_cpus_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        launch.main(["--processes", str(len(os.sched_getaffinity(0)) + 1), "--pin-cpus", "--", "true"])
    assert exit_.value.code == 2
    assert "error: argument --pin-cpus needs at least one CPU per process" in capsys.readouterr().err


def _kill_process_1_after(run, checkpoint: int) -> float:
    pid = int(run.wait_for(r"rlpipe\.launch: process 1 of 2 is pid (\d+)", timeout=60).group(1))
    run.wait_for(rf"RLPIPE_FAULT: paused after checkpoint {checkpoint} in process 1", timeout=420)
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def _assert_one_block_no_traceback(text: str) -> None:
    """Process 0's block names process 1, since when and the command to continue; nothing of the raw failure."""
    block = [line for line in text.splitlines() if line.startswith("[p0] rlpipe: process 0:")]
    assert len(block) == 4, text[-4000:]
    assert re.match(r"\[p0\] rlpipe: process 0: process 1 of 2 was lost \(no sign of life for \d+ s\)\. This run "
                    r"cannot go on", block[0]), block
    assert re.search(r"last sign of life: \d\d:\d\d:\d\d UTC", block[1]), block
    assert re.search(r"to continue, in every process: RLPIPE_RESUME=auto \S*kedro run --pipelines=sac$", block[2])
    for noise in ("Traceback", "--from-nodes", "Gloo all-reduce failed", "JaxRuntimeError"):
        assert noise not in text, noise


@pytest.mark.slow
def test_a_killed_process_is_restarted_and_the_run_ends_bitwise_as_an_uninterrupted_one(project, started):  # noqa: F811
    write_params(project, "sac", KILL_SAC)
    run = start(started, project, launch_command(1), RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS="2",
                RLPIPE_FAULT_PROCESS="1")  # the restarted processes never pause (RLPIPE_RESTART_COUNT is set)
    _kill_process_1_after(run, checkpoint=2)
    assert run.finish(timeout=900) == 0, run.text[-4000:]
    assert re.search(r"^rlpipe\.launch: process 1 exited with status -9; restart 1 of 1 in 1 s, from the last "
                     r"checkpoint$", run.text, re.MULTILINE), run.text[-4000:]
    _assert_one_block_no_traceback(run.text)
    restarted = run.text[run.text.index("restart 1 of 1"):]
    resumed_at = re.search(r"resuming \S+ from \S+ \((\d+) env steps\)", " ".join(restarted.split()))
    assert resumed_at and 0 < int(resumed_at.group(1)) < LONG_STEPS, restarted[-3000:]
    trained = trained_steps(restarted)
    assert trained and trained[0] > int(resumed_at.group(1)) and trained[-1] == LONG_STEPS, trained
    (version,) = versions(project, "data/06_models/sac/agent")  # one finished run
    _, meta = training_state(project, "sac", version)
    assert meta["env_steps"] == LONG_STEPS and (meta["num_processes"], meta["num_devices"]) == (2, 2)

    # the same run never interrupted, in this process with 2 devices (bitwise 2 processes x 1 device: see
    # tests/test_distributed.py)
    run_pipeline(project, "sac")
    restarted_version, fresh_version = versions(project, "data/06_models/sac/agent")
    assert restarted_version == version
    assert_bitwise_equal(training_state(project, "sac", version)[0], training_state(project, "sac", fresh_version)[0])
    summaries = [json.loads((project / "data/07_model_output/sac/eval_summary.json" / v / "eval_summary.json")
                            .read_text()) for v in (version, fresh_version)]
    assert summaries[0] == summaries[1]


@pytest.mark.slow
def test_a_killed_process_without_restarts_gives_one_block_and_status_75(project, started):  # noqa: F811
    write_params(project, "sac", KILL_SAC)
    run = start(started, project, launch_command(0), RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS="1",
                RLPIPE_FAULT_PROCESS="1")
    killed_at = _kill_process_1_after(run, checkpoint=1)
    run.wait_for(r"rlpipe\.launch: process 0 exited with status 75", timeout=120)
    seconds = time.monotonic() - killed_at
    print(f"\nthe survivor stopped {seconds:.1f} s after the kill")
    assert seconds < 60
    assert run.finish(timeout=120) == LOST_PROCESS_EXIT_CODE, run.text[-4000:]
    _assert_one_block_no_traceback(run.text)
    assert run.text.strip().splitlines()[-1].startswith(
        "rlpipe.launch: process 1 exited with status -9; no restart was allowed (--max-restarts 0): stopping with "
        "status 75")
    assert not versions(project, "data/06_models/sac/agent")  # nothing finished
