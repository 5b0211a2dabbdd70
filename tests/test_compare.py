"""``kedro run --pipelines=compare``: stored runs side by side, the config keys that differ named, as versioned
report entries and MLflow artifacts; bad run names stop before anything is written."""

import mlflow
import pandas as pd
import pytest

from rlpipe.pipelines import comparison
from rlpipe.pipelines.comparison import differing_keys, select_runs
from rlpipe.rl.config import ConfigError
from tests.support import lines_logged_by, run_pipeline
from tests.test_first_contact import versions, write_params
from tests.test_ppo import TINY_PPO


def test_differing_keys_by_hand():
    configs = [{"seed": 0, "train": {"learning_rate": 1e-3, "num_envs": 4}, "network": {"hidden_sizes": [16]}},
               {"seed": 0, "train": {"learning_rate": 3e-3, "num_envs": 4}, "network": {"hidden_sizes": [16]}},
               {"seed": 0, "train": {"learning_rate": 1e-3, "num_envs": 4}, "network": {"hidden_sizes": [32]}}]
    assert differing_keys(configs) == {"network.hidden_sizes": [(16,), (16,), (32,)],
                                       "train.learning_rate": [1e-3, 3e-3, 1e-3]}


@pytest.mark.slow
def test_compare_three_runs_that_differ_in_one_key(project, monkeypatch):
    for seed in (5, 6, 8):  # the seed, not a hyperparameter: the three runs share one compiled program
        write_params(project, "ppo", {**TINY_PPO, "seed": seed})
        run_pipeline(project, "ppo")
    runs = versions(project, "data/07_model_output/ppo/eval_summary.json")
    with lines_logged_by(comparison, monkeypatch) as lines:
        run_pipeline(project, "compare", {"compare": {"pipeline": "ppo"}})  # --params compare.pipeline=ppo
    assert lines.containing("the runs differ in seed")
    (version,) = versions(project, "data/08_reporting/compare/table.parquet")
    table = pd.read_parquet(project / "data/08_reporting/compare/table.parquet" / version / "table.parquet")
    assert list(table["version"]) == runs
    assert [c for c in table.columns if c.startswith("config.")] == ["config.seed"]
    assert list(table["config.seed"]) == [5, 6, 8]
    assert table["return_mean"].notna().all() and (table["agent_env_steps"] == 1024).all()
    for name in ("curves.png", "eval_returns.png"):
        image = project / "data/08_reporting/compare" / name / version / name
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.search_runs(["1"], filter_string=f"tags.run_id = '{version}'")[0]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "compare")} >= {
        "compare/table.parquet", "compare/curves.png", "compare/eval_returns.png"}
    # two of the runs named by MLflow run id and by version (one string, as --params carries it)
    from rlpipe.datasets import RunStore

    first = client.search_runs(["1"], filter_string=f"tags.run_id = '{runs[0]}'")[0].info.run_id
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        chosen = select_runs({"pipeline": "ppo", "runs": f"{first} {runs[2]}"}, RunStore(project / "data"))
    finally:
        mlflow.set_tracking_uri(previous)
    assert [r["version"] for r in chosen] == [runs[0], runs[2]]
    assert chosen[1]["config"]["seed"] == 8 and len(chosen[1]["episodes"]) == 4


class Store:
    root = "data"

    def __init__(self, stored):
        self.stored = stored

    def versions(self, pipeline):
        return self.stored if pipeline == "sac" else []

    def run(self, pipeline, version):
        return {"version": version}


@pytest.mark.parametrize("params,key,says", [
    ({"pipeline": "ppo"}, "compare.pipeline", "has no finished run"),
    ({"runs": ["2026-01-01T00.00.00.000Z", "v2"]}, "compare.runs[0]", "neither a finished run's version"),
    ({"runs": ["v1"]}, "compare.runs", "1 run(s) to compare"),
    ({"last": 0}, "compare.last", "must be >= 1"),
    ({"runs": 7}, "compare.runs", "expected a list"),
])
def test_bad_compare_parameters_name_the_key(params, key, says):
    with pytest.raises(ConfigError) as caught:
        select_runs(params, Store(["v1", "v2"]))
    assert caught.value.key == key and says in str(caught.value), str(caught.value)
