"""Runs side by side (``kedro run --pipelines=compare``): their learning curves overlaid, their evaluation returns
per run, and a table of their final summaries and of the config keys in which they differ."""

from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure

from rlpipe.reporting import plots
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl.config import CompareConfig, as_tuple, dotted, parse
from rlpipe.rl.errors import ConfigError

logger = logging.getLogger(__name__)

MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")
SUMMARY_COLUMNS = ("algorithm", "env_id", "agent_env_steps", "num_episodes", "return_mean", "return_std",
                   "return_min", "return_median", "return_max", "length_mean", "seeds.return_mean",
                   "seeds.return_iqm", "seeds.return_iqm_ci_low", "seeds.return_iqm_ci_high")


def select_runs(params: dict[str, Any], store: Any) -> list[dict[str, Any]]:
    """The runs ``compare`` names (catalog versions or MLflow run ids), or the newest ``last`` runs of its
    pipeline, loaded from the store, oldest first. A run that is not there is a ConfigError naming it."""
    config = parse(CompareConfig, params, "compare")
    pipeline = config.pipeline or algorithms.DEFAULT
    stored = store.versions(pipeline)
    if not stored:
        raise ConfigError("compare.pipeline", f"{pipeline!r} has no finished run in {store.root} (a run is "
                                              "finished once its eval_summary is written)")
    if not config.runs:
        versions = stored[-config.last:]
    else:
        versions = [_version_of(run, f"compare.runs[{i}]", stored) for i, run in enumerate(config.runs)]
    if len(set(versions)) < 2:
        raise ConfigError("compare.runs" if config.runs else "compare.last",
                          f"{len(set(versions))} run(s) to compare: name at least two "
                          f"({pipeline} has {len(stored)} finished run(s))")
    versions = sorted(set(versions))
    logger.info("comparing %d runs of %s: %s", len(versions), pipeline, ", ".join(versions))
    return [store.run(pipeline, v) for v in versions]


def _version_of(run: str, key: str, stored: list[str]) -> str:
    """A catalog version, as named or through the MLflow run whose ``run_id`` tag (the Kedro session id) it is."""
    if run in stored:
        return run
    if MLFLOW_RUN_ID.fullmatch(run):
        import mlflow

        try:
            tags = mlflow.MlflowClient().get_run(run).data.tags
        except Exception as error:  # mlflow raises its own exception kinds for a missing run
            raise ConfigError(key, f"{run!r} is no MLflow run of this project's store: {error}") from None
        version = tags.get("run_id")
        if version in stored:
            return version
        raise ConfigError(key, f"MLflow run {run} is of run {version!r}, which has no finished run here")
    newest = ", ".join(stored[-3:])
    raise ConfigError(key, f"{run!r} is neither a finished run's version nor an MLflow run id (newest: {newest})")


def differing_keys(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The dotted config keys whose values are not the same in every run, with each run's value (None where a run
    has no such key)."""
    flat = [{k: as_tuple(v) for k, v in dotted(c).items()} for c in configs]
    keys = sorted(set().union(*flat))
    out = {}
    for key in keys:
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


def compare_runs(runs: list[dict[str, Any]]) -> tuple[pd.DataFrame, Figure, Figure]:
    """The table (a row per run: version, its final summary, training time, and a ``config.<key>`` column per
    key that differs), the learning curves overlaid, and the eval returns per run."""
    differ = differing_keys([r["config"] for r in runs])
    labels = [_label(r, {k: v[i] for k, v in differ.items()}) for i, r in enumerate(runs)]
    rows = []
    for i, run in enumerate(runs):
        history = run["history"]
        row = {"version": run["version"], "pipeline": run["pipeline"], "label": labels[i]}
        row.update({c: run["summary"].get(c) for c in SUMMARY_COLUMNS if c in run["summary"]})
        if "train_seconds" in history and history["train_seconds"].notna().any():
            row["train_seconds"] = float(history["train_seconds"].dropna().iloc[-1])
        row.update({f"config.{k}": _cell(v[i]) for k, v in differ.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in table.columns:  # a column of mixed kinds (null and a number, a list) as text: Parquet needs one
        if table[column].dtype == object and not all(isinstance(v, str) for v in table[column]):
            table[column] = table[column].map(lambda v: "null" if v is None else str(v))
    if differ:
        logger.info("the runs differ in %s", ", ".join(differ))
    else:
        logger.info("the runs have the same config")
    title = f"{runs[0]['pipeline']} runs" + (f" differing in {', '.join(differ)}" if len(differ) <= 3 else "")
    curves = plots.compare_curves([r["history"] for r in runs], labels, title)
    returns = plots.compare_eval_returns([r["episodes"] for r in runs], labels,
                                         f"{title}: returns on each run's held-out scenarios")
    return table, curves, returns


def _label(run: dict[str, Any], values: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={_cell(v)}" for k, v in list(values.items())[:3])
    return run["version"] + (f" ({shown})" if shown else "")


def _cell(value: Any) -> Any:
    """A config value as a table cell: scalars as they are, anything else as text."""
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(list(value) if
                                                                                          isinstance(value, tuple)
                                                                                          else value)


def compare_pipeline() -> Pipeline:
    """``compare``: select the runs, then the table and both plots (namespace ``compare``)."""
    return Pipeline([
        Node(select_runs, ["params:compare", "store"], "selected_runs", name="select_runs"),
        Node(compare_runs, "selected_runs", ["table", "curves", "eval_returns"], name="compare_runs"),
    ], namespace="compare", parameters={"params:compare"}, prefix_datasets_with_namespace=True)
