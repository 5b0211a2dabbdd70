"""Issue 9: the same `kedro run` in two processes (one CPU device each, gloo collectives) against one process
with two devices; a process killed mid-run; a checkpoint resumed on another device count.

Every wait here is for a line of output or a process exit, bounded by a timeout; every process started is
killed at the end if it is still running."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from rlpipe.rl.checkpoint import load_checkpoint
from tests.conftest import TINY_SAC
from tests.support import Watched, run_pipeline
from tests.test_ppo import TINY_PPO

KEDRO = str(Path(sys.executable).with_name("kedro"))
PYTHON = sys.executable
LAUNCH = [PYTHON, "-m", "rlpipe.launch", "--processes", "2", "--devices-per-process", "1", "--grace", "90", "--",
          KEDRO, "run"]
TINY = {"sac": TINY_SAC, "ppo": TINY_PPO}
# long enough that a checkpoint comes well before the end (the pause makes the kill independent of speed anyway)
LONG_STEPS = 1280  # checkpoints every 256 env steps: a kill after the second leaves more than half to run
LONG_SAC = {**TINY_SAC, "buffer": {"capacity": 2048, "prefill_steps": 64},
            "train": {**TINY_SAC["train"], "total_env_steps": LONG_STEPS, "log_every_env_steps": 128,
                      "checkpoint_every_env_steps": 256, "keep_checkpoints": 10}}
# the runs a process is killed in: the same steps and checkpoints in 4x fewer iterations (each one a round of gloo
# collectives between the processes, the slow part of a 2-process run on this machine)
KILL_SAC = {**LONG_SAC, "train": {**LONG_SAC["train"], "num_envs": 16}}


@pytest.fixture
def started():
    """Processes a test starts; any still running at the end are killed (with their children)."""
    running: list[Watched] = []
    yield running
    for watched in running:
        watched.kill()
    for pid in _launched_children(running):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _launched_children(running: list[Watched]) -> list[int]:
    return [int(m) for w in running for m in re.findall(r"rlpipe\.launch: process \d+ of \d+ is pid (\d+)", w.text)]


def start(started: list, project: Path, command: list[str], devices: int | None = None, **env: str) -> Watched:
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400", **env}  # rich: no wrapped log lines
    if devices is not None:
        environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    watched = Watched(command, project, environ)
    started.append(watched)
    return watched


def write_params(project: Path, algo: str, params: dict) -> None:
    (project / "conf" / "local" / f"parameters_{algo}.yml").write_text(yaml.safe_dump({algo: params}))


def versions(project: Path, rel: str) -> list[str]:
    folder = project / rel
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def training_state(project: Path, algo: str, version: str):
    state, meta = load_checkpoint(project / f"data/06_models/{algo}/agent" / version / "agent", ["training"])
    return state["training"], meta


def trained_steps(output: str) -> list[int]:
    """The env steps of each progress line process 0 printed: one per compiled chunk the run itself trained."""
    return [int(m.replace(",", "")) for m in re.findall(r"\[sac\.train\] env steps ([\d,]+)/", output)]


def assert_bitwise_equal(a, b) -> None:
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def mlflow_runs(project: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    return client.search_runs([client.get_experiment_by_name("rlpipe").experiment_id])


@pytest.mark.parametrize("algo", ["sac", "ppo"])
@pytest.mark.slow
def test_two_processes_train_as_one_process_with_two_devices(project, started, algo):
    write_params(project, algo, TINY[algo])
    two = start(started, project, LAUNCH + [f"--pipelines={algo}"])
    assert two.finish(timeout=600) == 0, two.text[-4000:]

    # the same training state in both processes (a hash of each process's replica, logged by each)
    prints = dict((int(p), h) for h, p in re.findall(r"final training state (\w+) in process (\d) of 2", two.text))
    assert set(prints) == {0, 1} and prints[0] == prints[1], two.text[-3000:]
    # one set of catalog versions and one MLflow run: process 1 wrote nothing
    for rel in (f"data/06_models/{algo}/agent", f"data/06_models/{algo}/policy",
                f"data/07_model_output/{algo}/eval_summary.json", f"data/02_intermediate/{algo}/scenarios_train.parquet"):
        assert len(versions(project, rel)) == 1, rel
    runs = mlflow_runs(project)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(list((project / f"data/06_models/{algo}_checkpoints").iterdir())) == 1

    run_pipeline(project, algo)  # 1 process with 2 devices: this one (the tests force 2 CPU devices)
    multi, single = versions(project, f"data/06_models/{algo}/agent")  # timestamps: the 2-process run first
    state_multi, meta_multi = training_state(project, algo, multi)
    state_single, meta_single = training_state(project, algo, single)
    assert (meta_multi["num_processes"], meta_multi["num_devices"]) == (2, 2)
    assert (meta_single["num_processes"], meta_single["num_devices"]) == (1, 2)
    leaves_multi, leaves_single = jax.tree.leaves(state_multi), jax.tree.leaves(state_single)
    assert len(leaves_multi) == len(leaves_single)
    largest = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                  for a, b in zip(leaves_multi, leaves_single))
    print(f"\n{algo}: largest difference between 2 processes x 1 device and 1 process x 2 devices: {largest}")
    assert largest == 0.0  # two devices' pmean is one addition either way: bitwise equal
    summaries = [json.loads((project / f"data/07_model_output/{algo}/eval_summary.json" / v /
                             "eval_summary.json").read_text())
                 for v in versions(project, f"data/07_model_output/{algo}/eval_summary.json")]
    assert summaries[0] == summaries[1]


# A killed process 1: tests/test_elastic.py (the survivor's block and status 75; restarted, bitwise the uninterrupted
# run).


def test_a_lost_process_0_stops_the_other_naming_the_coordinator_and_keeps_the_checkpoints(project, started):
    write_params(project, "sac", KILL_SAC)
    run = start(started, project, LAUNCH + ["--pipelines=sac"], RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS="2",
                RLPIPE_FAULT_PROCESS="0")
    first = int(run.wait_for(r"rlpipe\.launch: process 0 of 2 is pid (\d+)", timeout=60).group(1))
    second = int(run.wait_for(r"rlpipe\.launch: process 1 of 2 is pid (\d+)", timeout=60).group(1))
    run.wait_for(r"RLPIPE_FAULT: paused after checkpoint 2 in process 0", timeout=420)
    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    status = int(run.wait_for(r"rlpipe\.launch: process 1 exited with status (-?\d+)", timeout=120).group(1))
    seconds = time.monotonic() - killed_at
    assert run.finish(timeout=120) != 0
    print(f"\nprocess 1 stopped {seconds:.1f} s after process 0 was killed, with status {status}")
    assert seconds < 60
    for pid in (first, second):  # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not versions(project, "data/06_models/sac/agent")  # nothing finished
    kept = [p for p in sorted((project / "data/06_models/sac_checkpoints").glob("*/step_*"))
            if (p / "meta.json").exists()]
    assert len(kept) == 2  # the two checkpoints written together before the loss, intact for a resume
    for path in kept:
        load_checkpoint(path, ["iteration"])
    # the README: the survivor exits with status 75 and a message naming the coordinator and what to do (JAX's
    # coordination client aborts it within a second of the loss; rlpipe's hook on that abort says why first)
    assert status == 75, run.text[-4000:]
    assert re.search(r"\[p1\] rlpipe: process 1: the coordinator \(process 0\) was lost: its coordination service "
                     r"at 127\.0\.0\.1:\d+ no longer answers .*This run cannot go on: start every process again "
                     r"with train\.resume=true", run.text), run.text[-4000:]


@pytest.mark.slow
def test_a_two_device_checkpoint_resumes_on_one_device(project, started):
    # a buffer larger than the whole run: what the checkpoint's two shards held is never overwritten afterwards
    write_params(project, "sac", {**LONG_SAC, "buffer": {"capacity": 4096, "prefill_steps": 64}})
    first = start(started, project, [KEDRO, "run", "--pipelines=sac"], devices=2,
                  RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS="1")
    first.wait_for(r"RLPIPE_FAULT: paused after checkpoint 1 in process 0", timeout=420)
    first.kill()
    checkpoint = sorted((project / "data/06_models/sac_checkpoints").glob("*/step_*"))[-1]
    saved, saved_meta = load_checkpoint(checkpoint, ["device"])
    old = saved["device"]["buffer"]
    assert old["data"]["obs"].shape == (4096, 3)
    held = int(saved_meta["env_steps"]) // 2  # every transition so far, half on each device, none wrapped yet
    assert int(np.asarray(old["size"]).max()) == held and 0 < held < 2048

    resumed = start(started, project, [KEDRO, "run", "--pipelines=sac", "--params", "sac.train.resume=true"],
                    devices=1)
    assert resumed.finish(timeout=600) == 0, resumed.text[-4000:]
    log = " ".join(resumed.text.split())
    assert "written on 2 device(s) on 1" in log and "not bitwise identical" in log
    state, meta = training_state(project, "sac", versions(project, "data/06_models/sac/agent")[0])
    assert meta["env_steps"] == LONG_STEPS and meta["num_devices"] == 1
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state) if np.asarray(x).dtype.kind == "f")
    # the one device's buffer: the two shards' transitions first, interleaved step by step in the order they were
    # collected (shard 0's k-th, shard 1's k-th, ...), then everything collected after the resume; nothing lost
    final, _ = load_checkpoint(project / "data/06_models/sac/agent" / versions(project, "data/06_models/sac/agent")[0]
                               / "agent", ["device"])
    new = final["device"]["buffer"]
    assert int(np.asarray(new["size"])) == int(np.asarray(new["position"])) == LONG_STEPS
    for name, values in old["data"].items():
        values = np.asarray(values)
        by_hand = np.stack([values[:held], values[2048:2048 + held]], axis=1).reshape((2 * held,) + values.shape[1:])
        np.testing.assert_array_equal(np.asarray(new["data"][name])[:2 * held], by_hand, err_msg=name)
    assert np.abs(np.asarray(new["data"]["obs"])[2 * held:LONG_STEPS]).sum(axis=1).min() > 0  # collected after


def test_collectives_average_over_devices_and_vanish_on_one():
    """rlpipe.rl.mesh.pmean/psum/pmax: the mesh collectives on several devices; on a one-device mesh no all-reduce
    is left in the compiled program (XLA keeps one-participant all-reduces, at a rendezvous each) and the values
    are the inputs, unchanged."""
    from jax.sharding import Mesh, PartitionSpec

    from rlpipe.rl import mesh

    assert jax.device_count() >= 2
    for n in (1, 2):
        devices = Mesh(np.asarray(jax.devices()[:n]), (mesh.AXIS,))
        fn = jax.jit(jax.shard_map(lambda x: (mesh.pmean(x), mesh.psum(x), mesh.pmax(x)), mesh=devices,
                                   in_specs=PartitionSpec(mesh.AXIS), out_specs=PartitionSpec(mesh.AXIS)))
        x = np.arange(3 * n, dtype=np.float32).reshape(n, 3) * 1.7
        mean, total, top = (np.asarray(v) for v in fn(x))
        np.testing.assert_array_equal(mean, np.broadcast_to(x.mean(0, keepdims=True) if n > 1 else x, x.shape))
        np.testing.assert_array_equal(total, np.broadcast_to(x.sum(0, keepdims=True), x.shape))
        np.testing.assert_array_equal(top, np.broadcast_to(x.max(0, keepdims=True), x.shape))
        assert ("all-reduce" in fn.lower(x).compile().as_text()) == (n > 1)


def test_a_tree_is_averaged_as_one_all_reduce_per_dtype_with_each_leaf_exact():
    """mesh.pmean/psum of a tree: one all-reduce per dtype in the compiled program (XLA's CPU runtime runs a tuple
    all-reduce leaf by leaf, a round trip between processes each), each leaf bitwise what the leaf's own
    all-reduce gives."""
    from jax.sharding import Mesh, PartitionSpec

    from rlpipe.rl import mesh

    devices = Mesh(np.asarray(jax.devices()[:2]), (mesh.AXIS,))
    rng = np.random.default_rng(0)
    tree = {"w": rng.normal(size=(2, 4, 3)).astype(np.float32), "b": rng.normal(size=(2, 3)).astype(np.float32),
            "s": rng.normal(size=(2, 1)).astype(np.float32), "n": np.arange(2 * 5, dtype=np.int32).reshape(2, 5)}

    def both(reduce, leafwise):
        return jax.jit(jax.shard_map(lambda t: (reduce(t), jax.tree.map(leafwise, t)), mesh=devices,
                                     in_specs=PartitionSpec(mesh.AXIS), out_specs=PartitionSpec(mesh.AXIS)))

    for reduce, leafwise in ((mesh.pmean, lambda v: jax.lax.pmean(v, mesh.AXIS)),
                             (mesh.psum, lambda v: jax.lax.psum(v, mesh.AXIS))):
        fn = both(reduce, leafwise)
        flat, by_leaf = fn(tree)
        for name in tree:
            np.testing.assert_array_equal(np.asarray(flat[name]), np.asarray(by_leaf[name]), err_msg=name)
        only_ours = jax.jit(jax.shard_map(reduce, mesh=devices, in_specs=PartitionSpec(mesh.AXIS),
                                          out_specs=PartitionSpec(mesh.AXIS)))
        text = only_ours.lower(tree).compile().as_text()
        assert len(re.findall(r"= \S+ all-reduce(?:-start)?\(", text)) == 2, text  # float32 and int32, unfused
