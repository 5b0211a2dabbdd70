"""The public Python API (``rlpipe.train``, ``load_agent``, ``evaluate``): the documented example runs, a run
through it is bit for bit the run ``kedro run`` makes of the same config, and bad configs stop before any work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

import rlpipe
from rlpipe.rl.errors import ConfigError
from tests.conftest import PROJECT_ROOT, TINY_SAC

KEDRO = Path(sys.executable).with_name("kedro")


def _example() -> str:
    text = (PROJECT_ROOT / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/python-api.md has no python example"
    return blocks[0]


@pytest.mark.slow
def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _example()
    assert len(code.strip().splitlines()) <= 20
    namespace: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    result, agent, fresh = namespace["result"], namespace["agent"], namespace["fresh"]
    out = capsys.readouterr().out
    assert f"mean return {result.eval_summary['return_mean']:.1f} on 64 held-out scenarios" in out
    assert result.config.train.total_env_steps == 3000 and result.config.seed == 7
    assert agent.env_steps == 3000 and agent.path == result.agent.path
    assert agent.path.is_relative_to(tmp_path / "data" / "06_models" / "sac_checkpoints")
    assert int(result.history["env_steps"].iloc[-1]) == 3000
    assert len(fresh.episodes) == 8 and fresh.summary["num_episodes"] == 8
    # the example's evaluation on the agent's own scenarios is its training run's final evaluation, exactly
    stored = rlpipe.evaluate(agent)
    np.testing.assert_array_equal(stored.episodes["return"].to_numpy(), result.eval_episodes["return"].to_numpy())


def _leaves(tree) -> list[tuple[str, np.ndarray]]:
    return [(jax.tree_util.keystr(path), np.asarray(leaf))
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.slow
def test_api_run_is_bitwise_the_kedro_run_of_the_same_config(project):
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": TINY_SAC}))
    kedro = subprocess.run([str(KEDRO), "run", "--pipelines=sac"], cwd=project, capture_output=True, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900)
    assert kedro.returncode == 0, kedro.stderr[-3000:]
    (version,) = [p.name for p in (project / "data/06_models/sac/agent").iterdir()]
    pipeline_agent = rlpipe.load_agent(project / "data/06_models/sac/agent" / version / "agent")
    (episodes_version,) = [p.name for p in (project / "data/07_model_output/sac/eval_episodes.parquet").iterdir()]
    pipeline_episodes = pd.read_parquet(project / "data/07_model_output/sac/eval_episodes.parquet" /
                                        episodes_version / "eval_episodes.parquet")

    result = rlpipe.train("sac", TINY_SAC, root=project)

    assert result.agent.path.parent.parent == project / "data/06_models/sac_checkpoints"
    assert not (project / ".jax_cache").exists()  # this process had a compilation cache: train kept it
    assert result.agent.env_steps == pipeline_agent.env_steps == 320
    ours, theirs = _leaves(result.policy["params"]), _leaves(pipeline_agent.policy["params"])
    assert [name for name, _ in ours] == [name for name, _ in theirs] and ours
    for (name, a), (_, b) in zip(ours, theirs):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"policy parameter {name} differs"
    # the whole final training state (critics, optimizers, temperature), not only the policy
    for (name, a), (_, b) in zip(_leaves(result.agent.checkpoint.part("training")),
                                 _leaves(pipeline_agent.checkpoint.part("training"))):
        assert np.array_equal(a, b), f"training state {name} differs"
    np.testing.assert_array_equal(result.eval_episodes["return"].to_numpy(), pipeline_episodes["return"].to_numpy())
    (summary_version,) = [p.name for p in (project / "data/07_model_output/sac/eval_summary.json").iterdir()]
    pipeline_summary = json.loads((project / "data/07_model_output/sac/eval_summary.json" / summary_version /
                                   "eval_summary.json").read_text())
    assert result.eval_summary["return_mean"] == pipeline_summary["return_mean"]


@pytest.mark.slow
def test_a_script_caches_its_compiled_programs_as_kedro_run_does(tmp_path):
    """``rlpipe.train`` in a new process keeps its programs in ``<root>/.jax_cache``: its second run loads every
    program from there (new functions, so nothing comes from the process's own memory)."""
    from tests.test_ppo import TINY_PPO

    code = ("import json, logging, sys, jax, rlpipe\n"
            "logging.basicConfig(level=logging.WARNING)\n"
            "jax.config.update('jax_explain_cache_misses', True)\n"
            f"rlpipe.train('ppo', json.loads(sys.argv[1]), root={str(tmp_path)!r})\n"
            "print('second run', file=sys.stderr, flush=True)\n"
            f"rlpipe.train('ppo', json.loads(sys.argv[1]), root={str(tmp_path)!r})\n"
            "print('cache:', jax.config.jax_compilation_cache_dir)\n")
    env = {k: v for k, v in os.environ.items() if k != "RLPIPE_JAX_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(TINY_PPO)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"cache: {tmp_path / '.jax_cache'}" in done.stdout
    first, second = done.stderr.split("second run\n")
    assert "PERSISTENT COMPILATION CACHE MISS" in first  # compiled, and written
    assert len(list((tmp_path / ".jax_cache").glob("jit_*-cache"))) > 5
    assert "PERSISTENT COMPILATION CACHE MISS" not in second, second[-3000:]  # every program loaded


def test_a_bad_key_is_a_config_error_naming_it_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        rlpipe.train("sac", {"train": {"total_env_stepz": 2000}})
    assert error.value.key == "sac.train.total_env_stepz"
    assert "unknown key" in str(error.value) and "total_env_steps" in str(error.value)
    params = tmp_path / "parameters_ppo.yml"
    params.write_text(yaml.safe_dump({"ppo": {"train": {"num_envs": -3}}}))
    with pytest.raises(ConfigError) as error:
        rlpipe.train(params)
    assert error.value.key == "ppo.train.num_envs"
    with pytest.raises(ConfigError) as error:
        rlpipe.train("sacc")
    assert error.value.key == "config" and "sac" in error.value.problem
    assert list(tmp_path.iterdir()) == [params]  # nothing was written: no run folder, no checkpoint


def test_import_rlpipe_stays_light():
    code = "import sys, rlpipe; assert 'jax' not in sys.modules and 'kedro' not in sys.modules; print(rlpipe.train)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "function train" in done.stdout
