"""First contact: config errors as short messages, a quiet console, evaluating and continuing stored agents, videos
during training."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from rlpipe.datasets import CheckpointStore
from rlpipe.pipelines.training import init_agent
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.errors import ConfigError
from tests.conftest import TINY_SAC
from tests.support import run_pipeline

KEDRO = Path(sys.executable).with_name("kedro")


def kedro_run(project: Path, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("RLPIPE_VERBOSE", None)
    return subprocess.run([str(KEDRO), "run", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)


def write_params(project: Path, algo: str, params: dict) -> None:
    (project / "conf" / "local" / f"parameters_{algo}.yml").write_text(yaml.safe_dump({algo: params}))


def versions(project: Path, rel: str) -> list[str]:
    folder = project / rel
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def summary_of(project: Path, entry: str, version: str) -> dict:
    return json.loads((project / "data/07_model_output" / entry / "eval_summary.json" / version /
                       "eval_summary.json").read_text())


BAD = [  # (--params, the key the message must name, a phrase it must contain)
    ("sac.train.lr_typo=1", "sac.train.lr_typo", "unknown key"),
    ("sac.train.learning_rat=0.1", "sac.train.learning_rat", "did you mean 'learning_rate'"),
    ("sac.train.batch_size=true", "sac.train.batch_size", "expected an integer"),
    ("sac.train.gamma=1.5", "sac.train.gamma", "out of range"),
    ("sac.network.activation=swish", "sac.network.activation", "is not one of"),
    ("sac.train.batch_size=1000000", "sac.train.batch_size", "a batch must fit in the buffer"),
    ("sac.env.id=NoSuchEnv-v0", "sac.env.id", "unknown environment"),
    ("distributed.num_processes=0", "distributed.num_processes", "out of range"),
    ("ppo.train.init_from_buffer=true", "ppo.train.init_from_buffer", "unknown key"),  # SAC's own key
]


@pytest.mark.parametrize("params,key,phrase", BAD, ids=[b[1] for b in BAD])
def test_every_bad_config_class_is_a_short_message_without_traceback(project, params, key, phrase):
    (project / "mlflow.db").unlink()  # the fixture's empty store: this test checks that none is created
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    done = kedro_run(project, "--pipelines=sac", "--params", params)
    output = done.stdout + done.stderr
    lines = output.strip().splitlines()
    assert done.returncode == 2, output
    assert len(lines) <= 12, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert "Configuration error:" in output and f"  {key}: " in output and phrase in output, output
    # nothing was written: no run, no artifact, no MLflow store
    after = sorted(p.relative_to(project) for p in project.rglob("*") if "__pycache__" not in p.parts)
    assert [p for p in after if p.parts[0] in ("data", "mlruns")] == [], after
    assert not (project / "mlflow.db").exists() or key == "sac.env.id"
    del before


def test_a_config_error_stops_kedro_run_before_mlflow_jax_or_the_plugins_load(project):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RLPIPE_VERBOSE", None)
    done = subprocess.run([sys.executable, "-X", "importtime", str(KEDRO), "run", "--pipelines=sac", "--params",
                           "sac.train.learning_rat=0.1"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.returncode == 2 and "did you mean 'learning_rate'" in done.stderr, done.stderr[-3000:]
    assert "kedro.config" in imported and "rlpipe.rl.config" in imported  # it did load and check the parameters
    assert not {"mlflow", "jax", "kedro_mlflow", "gymnax", "pandas"} & imported, sorted(imported)
    # a run whose parameters are fine is not stopped by the early check (it fails later, on the env)
    late = kedro_run(project, "--pipelines=sac", "--params", "sac.env.id=NoSuchEnv-v0")
    assert late.returncode == 2 and "unknown environment" in late.stdout + late.stderr


def test_verbose_brings_back_the_traceback(project):
    done = kedro_run(project, "--pipelines=sac", "--params", "sac.train.lr_typo=1", "-v")
    assert done.returncode != 0
    assert "Traceback" in done.stdout + done.stderr
    quiet = kedro_run(project, "--pipelines=sac", "--params", "sac.train.lr_typo=1",
                      extra_env={"RLPIPE_VERBOSE": "0"})
    assert "Traceback" not in quiet.stdout + quiet.stderr


@pytest.mark.slow  # the default budget (12,000 env steps) through the command line
def test_a_default_run_prints_at_most_40_lines_and_says_where_everything_is(project):
    done = kedro_run(project, "--pipelines=sac")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    lines = output.strip().splitlines()
    assert len(lines) <= 40, output
    for node in ("load_config", "train", "evaluate", "export_policy"):
        assert re.search(rf"sac\.{node} done in \d+\.\d s", output), output
    assert "evaluation on 64 held-out scenarios: mean return" in output
    assert re.search(r"artifacts \(version \S+\): .*data/06_models/sac/", output)
    assert re.search(r"MLflow run [0-9a-f]{32} ", output)
    assert "Warning" not in output and "WARNING" not in output, output
    assert max(len(line) for line in lines) > 80  # one line each, not wrapped at a terminal width
    # the history at full resolution: >= 100 training points, evaluations on the regular grid and at the end
    (version,) = versions(project, "data/07_model_output/sac/training_history.parquet")
    history = pd.read_parquet(project / "data/07_model_output/sac/training_history.parquet" / version /
                              "training_history.parquet")
    assert history["critic_loss"].notna().sum() >= 100
    # a row per finished episode: Pendulum's 8 envs end theirs together every 200 steps, 6 times in 12,000
    assert history["episode_return"].notna().sum() == 6 * 8
    assert list(history.dropna(subset=["eval_return_mean"])["env_steps"]) == list(range(2000, 12001, 1000))
    assert history["env_steps"].is_monotonic_increasing
    assert history.dropna(subset=["critic_loss"])["env_steps"].is_unique  # one point per step; episodes may share


TINY_EVAL_SAC = {**TINY_SAC, "tracking": {"video_every_env_steps": TINY_SAC["train"]["log_every_env_steps"]}}


@pytest.mark.slow
def test_sac_eval_reproduces_the_stored_summary_and_films_the_episode(project):
    write_params(project, "sac", TINY_SAC)  # no training videos: the eval pipeline films its own episode
    run_pipeline(project, "sac")  # in this process: what is checked is the pipelines' outputs, not the command line
    first = versions(project, "data/06_models/sac/agent")[-1]
    run_pipeline(project, "sac")  # a newer agent: the eval must take the one named
    run_pipeline(project, "sac_eval", load_versions={"sac.agent": first})  # --load-versions sac.agent:<first>
    evaluated = summary_of(project, "sac_eval", versions(project, "data/07_model_output/sac_eval/eval_summary.json")[-1])
    stored = summary_of(project, "sac", first)
    assert evaluated["agent_version"] == first and evaluated["scenarios"] == "stored"
    assert {k: evaluated[k] for k in stored} == stored  # exactly: same scenarios, same program, same params
    eval_version = versions(project, "data/08_reporting/sac_eval/videos")[-1]
    media = project / "data/08_reporting/sac_eval/videos" / eval_version / "videos"
    assert (media / "episode.gif").read_bytes()[:6] == b"GIF89a"
    assert (media / "episode.mp4").read_bytes()[4:8] == b"ftyp"  # the test extras bring an ffmpeg
    run = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_runs(
        ["1"], filter_string="tags.`rlpipe.evaluated_agent` != ''")[0]
    assert run.data.tags["rlpipe.evaluated_agent"] == f"sac.agent@{first}"
    # fresh scenarios: other reset seeds than the agent's training and eval scenarios
    run_pipeline(project, "sac_eval", {"evaluation": {"scenarios": "fresh", "num_scenarios": 5, "animation": False}})
    fresh = summary_of(project, "sac_eval", versions(project, "data/07_model_output/sac_eval/eval_summary.json")[-1])
    assert fresh["num_episodes"] == 5 and fresh["scenarios"] == "fresh"


@pytest.mark.slow
def test_videos_appear_at_the_configured_interval(project):
    write_params(project, "sac", TINY_EVAL_SAC)
    run_pipeline(project, "sac")
    version = versions(project, "data/08_reporting/sac/training_videos")[-1]
    files = sorted(p.name for p in (project / "data/08_reporting/sac/training_videos" / version /
                                    "training_videos").glob("step_*"))
    t, b = TINY_SAC["train"], TINY_SAC["buffer"]
    every = t["log_every_env_steps"]
    prefill = -(-b["prefill_steps"] // t["num_envs"]) * t["num_envs"]
    steps = list(range(prefill + every, t["total_env_steps"] + 1, every))
    assert steps and files == sorted([f"step_{s:010d}.gif" for s in steps] + [f"step_{s:010d}.mp4" for s in steps])
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.search_runs(["1"])[0]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "sac/training_videos")}
    assert f"sac/training_videos/step_{steps[0]:010d}.gif" in logged


@pytest.mark.slow
def test_init_from_starts_from_the_stored_params_and_records_lineage(project):
    write_params(project, "sac", TINY_SAC)
    run_pipeline(project, "sac")
    parent = versions(project, "data/06_models/sac/agent")[-1]
    store = CheckpointStore(project / "data/06_models/sac/agent")
    stored, _ = store.open(parent, "k")

    config = load_config("sac", {**TINY_SAC, "train": {**TINY_SAC["train"], "init_from": "latest"}}, 2)
    training, lineage = init_agent(config, store)
    assert lineage["parent_version"] == parent
    expected = stored.part("training")
    for name in ("actor_params", "critic_params", "target_critic_params", "log_alpha"):
        got = getattr(training, name)
        flat_got, flat_expected = _leaves(got), _leaves(expected[name])
        assert flat_got.keys() == flat_expected.keys()
        for k in flat_got:
            np.testing.assert_array_equal(np.asarray(flat_got[k]), flat_expected[k])
    assert int(training.grad_steps) == 0  # a new run: counters start afresh
    fresh, no_lineage = init_agent(load_config("sac", TINY_SAC, 2), store)
    assert no_lineage == {}
    fresh_leaves, stored_leaves = _leaves(fresh.actor_params), _leaves(expected["actor_params"])
    assert not all(np.array_equal(fresh_leaves[k], stored_leaves[k]) for k in stored_leaves)  # it did train

    run_pipeline(project, "sac", {"sac": {"train": {"init_from": parent, "init_from_buffer": True}}})
    child = versions(project, "data/06_models/sac/agent")[-1]
    meta = json.loads((project / "data/06_models/sac/agent" / child / "agent" / "meta.json").read_text())
    assert meta["parent"]["parent_version"] == parent and meta["parent"]["buffer"] is True
    run = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_runs(
        ["1"], filter_string="tags.`rlpipe.parent_agent` != ''")[0]
    assert run.data.tags["rlpipe.parent_agent"] == f"sac.agent@{parent}"


@pytest.mark.slow  # a whole pipeline run first
def test_init_from_refuses_another_shape_or_algorithm_or_version(project):
    write_params(project, "sac", TINY_SAC)
    run_pipeline(project, "sac")
    store = CheckpointStore(project / "data/06_models/sac/agent")
    wider = {**TINY_SAC, "network": {"hidden_sizes": [48, 48]}, "train": {**TINY_SAC["train"], "init_from": "latest"}}
    with pytest.raises(ConfigError, match=r"sac\.train\.init_from: .*does not fit this config.*shape"):
        init_agent(load_config("sac", wider, 2), store)
    with pytest.raises(ConfigError, match=r"is not a stored agent version"):
        init_agent(load_config("sac", {**TINY_SAC, "train": {**TINY_SAC["train"], "init_from": "2000-01-01"}}, 2),
                   store)
    ppo = load_config("ppo", {"train": {"init_from": "latest"}}, 2)
    with pytest.raises(ConfigError, match=r"ppo\.train\.init_from: .*is a sac agent"):
        init_agent(ppo, store)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/"): np.asarray(tree)}
