"""Issue 6: exact resume after SIGKILL, corrupt-checkpoint fallback, the NaN guard, bad input of every kind,
concurrent runs and no pickles."""

import copy
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from rlpipe.rl.checkpoint import CheckpointManager, CorruptCheckpointError, find_resumable, load_checkpoint
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.config import ConfigError, to_dict
from rlpipe.rl.envs import ScenarioError, generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.loop import NonFiniteError
from tests.conftest import TINY_SAC
from tests.support import Watched, run_pipeline

KEDRO = Path(sys.executable).with_name("kedro")

KILL_SAC = {"seed": 11, "scenarios": {"num_train": 8, "num_eval": 4}, "network": {"hidden_sizes": [32, 32]},
            "buffer": {"capacity": 4096, "prefill_steps": 64},
            "train": {"total_env_steps": 3_600, "num_envs": 4, "batch_size": 32, "grad_updates_per_iter": 2,
                      "log_every_env_steps": 400, "eval_every_env_steps": 2000, "checkpoint_every_env_steps": 1200,
                      "keep_checkpoints": 5}}
# a recurrent policy on a masked task: its hidden states are part of what must resume exactly
KILL_PPO = {"seed": 12, "scenarios": {"num_train": 8, "num_eval": 4},
            "env": {"id": "CartPole-v1", "observation_mask": "no_velocity"},
            "network": {"hidden_sizes": [32], "recurrent": {"cell": "lstm", "hidden_size": 16}},
            "train": {"total_env_steps": 12_288, "num_envs": 4, "num_steps": 64, "update_epochs": 2,
                      "num_minibatches": 2, "log_every_env_steps": 2048, "eval_every_env_steps": 6144,
                      "checkpoint_every_env_steps": 4096, "keep_checkpoints": 5, "normalize_observations": True},
            "early_stopping": {"target_return": None}}


def write_params(project: Path, algo: str, params: dict) -> None:
    (project / "conf" / "local" / f"parameters_{algo}.yml").write_text(yaml.safe_dump({algo: params}))


def kedro_run(project: Path, *args: str, background: bool = False):
    command = [str(KEDRO), "run", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if background:
        return subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def versions(project: Path, rel: str) -> list[str]:
    folder = project / rel
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def checkpoints(project: Path, algo: str) -> list[Path]:
    return sorted((project / f"data/06_models/{algo}_checkpoints").glob("*/step_*"))


def kill_after_checkpoints(project: Path, algo: str, count: int) -> None:
    """Run until the ``count``-th periodic checkpoint is written, then SIGKILL the run. The run pauses there itself
    (``RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS``) and says so: the kill waits for that line, never for time to pass,
    so a fast run cannot finish first."""
    run = Watched([str(KEDRO), "run", f"--pipelines={algo}"], project,
                  {**os.environ, "PYTHONUNBUFFERED": "1", "RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS": str(count)})
    try:
        run.wait_for(rf"RLPIPE_FAULT: paused after checkpoint {count} in process 0", timeout=300)
        run.proc.send_signal(signal.SIGKILL)
        assert run.finish(timeout=30) == -signal.SIGKILL
    finally:
        run.kill()
    assert len([p for p in checkpoints(project, algo) if (p / "meta.json").exists()]) == count
    assert not versions(project, f"data/06_models/{algo}/agent")  # it really died mid-training


def trained_steps(output: str, algo: str) -> list[int]:
    """The env steps of each progress line a run printed (one per compiled chunk it ran itself, off a terminal)."""
    return [int(m.replace(",", "")) for m in re.findall(rf"^\[{algo}\.train\] env steps ([\d,]+)/", output,
                                                        re.MULTILINE)]


def agent_and_summary(project: Path, algo: str, version: str):
    state, meta = load_checkpoint(project / f"data/06_models/{algo}/agent" / version / "agent")
    summary = json.loads((project / f"data/07_model_output/{algo}/eval_summary.json" / version /
                          "eval_summary.json").read_text())
    return state, meta, summary


def squeeze(text: str) -> str:
    """Log text without whitespace: rich wraps long lines wherever it likes."""
    return "".join(text.split())


def assert_bitwise_equal(a, b):
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y)


# two seeds with a scenario curriculum: each seed's draw weights are run state that must resume exactly
KILL_SAC_SEEDS = {**KILL_SAC, "train": {**KILL_SAC["train"], "total_env_steps": 3_600, "num_seeds": 2},
                  "scenarios": {**KILL_SAC["scenarios"], "ranges": {"m": [0.5, 2.0]},
                                "curriculum": {"every_env_steps": 800, "temperature": 0.5}}}


# multi-agent SAC on a JaxMARL env: the joint env states, the shared actor, the attention critics and the buffer;
# TINY_MASAC's chunks (tests/test_masac.py, with the default env and metrics): the two share their compiled programs
KILL_MASAC = {"seed": 13, "scenarios": {"num_train": 8, "num_eval": 4},
              "network": {"hidden_sizes": [32, 32], "attention": {"embed_dim": 16, "heads": 2}},
              "buffer": {"capacity": 4096, "prefill_steps": 256},
              "train": {"total_env_steps": 1_024, "num_envs": 8, "batch_size": 32, "grad_updates_per_iter": 2,
                        "log_every_env_steps": 256, "eval_every_env_steps": 512, "checkpoint_every_env_steps": 256,
                        "keep_checkpoints": 5}}


# The other algorithms' run state (recurrent states, curriculum, multi-agent) resumes in tests/test_resume_state.py,
# in-process; here a real SIGKILL of `kedro run`, with a torn newest checkpoint.
@pytest.mark.parametrize("algo,params,corrupt_newest", [("sac", KILL_SAC, True)], ids=["sac"])
@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical_to_an_uninterrupted_run(project, algo, params, corrupt_newest):
    write_params(project, algo, params)
    kill_after_checkpoints(project, algo, count=2)
    taken = [p for p in checkpoints(project, algo) if (p / "meta.json").exists()]
    if corrupt_newest:  # a torn newest checkpoint: resume must notice, say so, and take the one before
        newest = taken[-1]
        victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        victim_size = victim.stat().st_size
        victim.write_bytes(victim.read_bytes()[: victim_size // 2])
    resumed = kedro_run(project, f"--pipelines={algo}", "--params", f"{algo}.train.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = squeeze(resumed.stdout + resumed.stderr)
    expected = taken[-2] if corrupt_newest else taken[-1]
    assert "resuming" in log and expected.name in log
    if algo == "sac":  # the buffer comes from the checkpoint: the resumed run collected no prefill
        prefills = versions(project, "data/03_primary/sac/prefill_transitions.npz")
        with np.load(project / "data/03_primary/sac/prefill_transitions.npz" / prefills[-1] /
                     "prefill_transitions.npz") as resumed_prefill:
            assert resumed_prefill["reward"].size == 0
    if corrupt_newest:  # reported, then set aside (renamed, never deleted) with its damage as it was
        assert "skippingadamagedcheckpoint" in log and "setaside" in log
        aside = list(newest.parent.glob(f"set-aside-{newest.name}-*"))
        assert len(aside) == 1, sorted(p.name for p in newest.parent.iterdir())
        assert (aside[0] / victim.relative_to(newest)).stat().st_size == victim_size // 2

    run_pipeline(project, algo)  # the same seed and config, never interrupted (in this process: same devices)
    resumed_version, fresh_version = versions(project, f"data/06_models/{algo}/agent")
    state_r, meta_r, summary_r = agent_and_summary(project, algo, resumed_version)
    state_f, meta_f, summary_f = agent_and_summary(project, algo, fresh_version)
    # the resumed process started at the checkpoint's step, not from 0: it ran exactly the chunks the uninterrupted
    # run ran after that step (a resume that ignored the checkpoint would retrain from the start, bitwise the same)
    start = int(expected.name.removeprefix("step_"))
    history_r = pd.read_parquet(project / f"data/07_model_output/{algo}/training_history.parquet" / resumed_version /
                                "training_history.parquet")
    history_f = pd.read_parquet(project / f"data/07_model_output/{algo}/training_history.parquet" / fresh_version /
                                "training_history.parquet")
    trained = trained_steps(resumed.stderr, algo)
    all_steps = list(history_f.dropna(subset=["train_seconds"])["env_steps"])  # the rows where a chunk ended
    assert all_steps and all_steps[-1] == meta_f["env_steps"], all_steps
    assert trained and trained[0] > start, (start, trained)
    assert trained == [s for s in all_steps if s > start], (start, trained, all_steps)
    assert_bitwise_equal(state_r, state_f)
    assert summary_r == summary_f
    assert meta_r["env_steps"] == meta_f["env_steps"]
    assert list(history_r["env_steps"]) == list(history_f["env_steps"])  # the full history, interruption included
    timing = [c for c in history_f.columns if c.endswith(("_per_s", "_seconds"))]
    pd.testing.assert_frame_equal(history_r.drop(columns=timing), history_f.drop(columns=timing))


def test_damaged_checkpoints_are_detected_and_skipped(tmp_path):
    manager = CheckpointManager(tmp_path / "run", keep=5)
    for step in (100, 200, 300):
        manager.save(step, {"w": np.full(1000, step, np.float32)}, {"algorithm": "sac"})
    # truncate the newest's data, drop the middle one's meta.json: the oldest is the one to resume
    newest = manager.path(300)
    data = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(CorruptCheckpointError, match="does not match"):
        load_checkpoint(newest)
    (manager.path(200) / "meta.json").unlink()
    found = find_resumable(tmp_path)
    assert found.path == manager.path(100) and found.meta["env_steps"] == 100
    manager.mark_complete()
    assert find_resumable(tmp_path) is None  # finished runs are not resumed


@pytest.mark.slow
def test_nan_stops_with_the_iteration_and_metric_and_keeps_finite_checkpoints(project):
    raw = copy.deepcopy(TINY_SAC)
    raw["env"] = {"id": "tests.nan_env:NaNRewardPendulum"}
    raw["train"].update(total_env_steps=2000, checkpoint_every_env_steps=128, keep_checkpoints=10)
    write_params(project, "sac", raw)
    bootstrap_project(project)
    with pytest.raises(NonFiniteError) as err, KedroSession.create(project_path=project) as session:
        session.run(pipeline_names=["sac"])
    message = str(err.value)
    assert "training diverged at iteration" in message and "critic_loss" in message
    assert "The last finite checkpoint" in message
    kept = [p for p in checkpoints(project, "sac") if (p / "meta.json").exists()]
    assert kept and str(kept[-1]) in message
    for path in kept:  # every checkpoint on disk is finite
        state, _ = load_checkpoint(path)
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["training"]) if x.dtype.kind == "f")


def test_absurd_learning_rate_is_caught_in_the_compiled_loop():
    from tests.support import train

    raw = copy.deepcopy(TINY_SAC)
    raw["train"]["learning_rate"] = 1e30
    with pytest.raises(NonFiniteError, match=r"training diverged (at iteration \d+|between iterations)"):
        train("sac", raw, evaluate=False)


# ------------------------------------------------------------------------------------------- property-based
BAD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                       st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                                 max_size=2))


def paths(tree: dict, prefix=()):
    for k, v in tree.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from paths(v, prefix + (k,))


SAC_PATHS = sorted(paths(to_dict(load_config("sac", {}, 1))))
PPO_PATHS = sorted(paths(to_dict(load_config("ppo", {}, 1))))
EXAMPLES = {"config": 0, "scenarios": 0}


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(algo=st.sampled_from(["sac", "ppo"]), data=st.data(),
       mutations=st.lists(st.tuples(st.integers(0, 10**6), BAD_VALUES, st.booleans()), min_size=1, max_size=3),
       devices=st.sampled_from([1, 2, 3]))
def test_no_invalid_config_escapes_with_a_foreign_error(algo, data, mutations, devices):
    EXAMPLES["config"] += 1
    paths_ = SAC_PATHS if algo == "sac" else PPO_PATHS
    raw = to_dict(load_config(algo, {}, 1))
    for index, value, new_key in mutations:
        *parents, leaf = paths_[index % len(paths_)]
        node = raw
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[leaf + "_x" if new_key else leaf] = value
    try:
        config = load_config(algo, raw, devices)
    except ConfigError as exc:
        assert str(exc).startswith(f"{algo}") and exc.key.startswith(algo)
        return
    # accepted: then it really is a usable config
    assert config.train.num_envs % devices == 0 and config.train.total_env_steps >= 1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(column=st.sampled_from(["reset_seed", "m", "l", "g", "dt", "max_speed", "max_torque", "max_steps_in_episode",
                               "scenario_id"]),
       kind=st.sampled_from(["drop", "nan", "inf", "string", "negative", "huge", "fraction", "bool", "empty"]),
       row=st.integers(0, 5))
def test_no_invalid_scenario_table_escapes_with_a_foreign_error(column, kind, row):
    EXAMPLES["scenarios"] += 1
    spec = make_env("Pendulum-v1")
    table, _ = generate_scenarios(spec, {}, 6, 1, 0)
    table = table.astype("float64")
    if kind == "drop":
        table = table.drop(columns=[column])
    elif kind == "empty":
        table = table.iloc[:0]
    elif kind == "string":
        table[column] = table[column].astype(object)
        table.loc[row, column] = "x"
    elif kind == "bool":
        table[column] = table[column] > 0
    else:
        table.loc[row, column] = {"nan": np.nan, "inf": np.inf, "negative": -3.0, "huge": 1e40,
                                  "fraction": 0.5}[kind]
    try:
        batch = scenarios_to_batch(table, spec, "user_scenarios.parquet")
    except ScenarioError as exc:
        assert str(exc).startswith("user_scenarios.parquet:")
        return
    assert batch.size == len(table)  # accepted: a table the env can run (e.g. a harmless change to scenario_id)


@pytest.fixture(scope="module", autouse=True)
def report_examples():
    yield
    print(f"\nhypothesis examples run: {EXAMPLES['config']} configs, {EXAMPLES['scenarios']} scenario tables")


# -------------------------------------------------------------------------------------------- concurrency, pickle
@pytest.mark.slow
def test_two_concurrent_runs_keep_separate_versions_and_mlflow_runs(project):
    from rlpipe.versions import lock_path

    write_params(project, "sac", TINY_SAC)
    lock = lock_path(project / "data")  # no data/ yet: the temp folder's lock for this project
    first = kedro_run(project, "--pipelines=sac", background=True)
    second = kedro_run(project, "--pipelines=sac", background=True)
    out = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, out[0][-2000:] + out[1][-2000:]
    for rel in ("data/06_models/sac/agent", "data/07_model_output/sac/eval_summary.json",
                "data/02_intermediate/sac/scenarios_train.parquet", "data/08_reporting/sac/policy_animation.gif"):
        assert len(versions(project, rel)) == 2, rel
    assert len(list((project / "data/06_models/sac_checkpoints").iterdir())) == 2
    # the two runs were named through the project's version lock (rlpipe.versions), the later one last
    assert lock.read_text().strip() == max(versions(project, "data/06_models/sac/agent"))
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("rlpipe").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["run_id"] for r in runs} == set(versions(project, "data/06_models/sac/agent"))


def test_processes_naming_runs_in_the_same_millisecond_get_distinct_versions(tmp_path):
    """Two processes take 200 run versions each, as fast as they can, from one data folder: all 400 differ (Kedro's
    own millisecond timestamps collided in CI when two runs started together)."""
    code = ("import sys; from pathlib import Path; from rlpipe.versions import unique_timestamp\n"
            "print(' '.join(unique_timestamp(Path(sys.argv[1])) for _ in range(200)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    stamps = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [len(s) for s in stamps] == [200, 200]
    assert all(s == sorted(s) for s in stamps)  # each process's versions increase
    assert len(set(stamps[0]) | set(stamps[1])) == 400
    assert (tmp_path / ".last_run_version").read_text().strip() == max(stamps[0] + stamps[1])  # tmp_path exists


def test_no_catalog_dataset_is_a_pickle():
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import configure_project
    from kedro.io import DataCatalog

    from rlpipe.pipeline_registry import register_pipelines
    from tests.conftest import PROJECT_ROOT

    configure_project("rlpipe")
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local",
                               custom_resolvers={"project_root": lambda: str(PROJECT_ROOT)})
    catalog = DataCatalog.from_config(loader["catalog"])
    names = {d for p in register_pipelines().values() for d in p.datasets() if not d.startswith("params:")
             and not d.endswith(".storage_url")}  # the searches' storage URLs: put in memory by a hook, never saved
    types = {name: type(catalog[name]).__name__ for name in names}
    assert len(types) >= 20
    assert not [n for n, t in types.items() if "pickle" in t.lower()], types
    assert "pickle" not in (PROJECT_ROOT / "conf/base/catalog.yml").read_text().lower()
