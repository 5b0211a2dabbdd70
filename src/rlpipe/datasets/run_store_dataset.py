"""Every stored run of the training pipelines, as one input: what ``kedro run --pipelines=compare`` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rlpipe.datasets._base import LocalVersionedDataset

# where a run's artifacts are under the data folder: the catalog's entries of the training pipelines
LAYOUT = {
    "summary": "07_model_output/{pipeline}/eval_summary.json/{version}/eval_summary.json",
    "episodes": "07_model_output/{pipeline}/eval_episodes.parquet/{version}/eval_episodes.parquet",
    "history": "07_model_output/{pipeline}/training_history.parquet/{version}/training_history.parquet",
    "agent_meta": "06_models/{pipeline}/agent/{version}/agent/meta.json",
}


class RunStore:
    """The finished runs (those with an evaluation summary) of each training pipeline under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def versions(self, pipeline: str) -> list[str]:
        """Versions (Kedro session ids) of ``pipeline``'s finished runs, oldest first."""
        folder = self.root / LAYOUT["summary"].split("/{version}")[0].format(pipeline=pipeline)
        if not folder.is_dir():
            return []
        return sorted(v.name for v in folder.iterdir()
                      if (self.root / LAYOUT["summary"].format(pipeline=pipeline, version=v.name)).is_file())

    def run(self, pipeline: str, version: str) -> dict[str, Any]:
        """A run's evaluation summary and per-scenario episodes, its training history and its config."""
        path = {k: self.root / v.format(pipeline=pipeline, version=version) for k, v in LAYOUT.items()}
        meta = json.loads(path["agent_meta"].read_text()) if path["agent_meta"].is_file() else {}
        return {"version": version, "pipeline": pipeline,
                "summary": json.loads(path["summary"].read_text()),
                "episodes": pd.read_parquet(path["episodes"]),
                "history": pd.read_parquet(path["history"]) if path["history"].is_file() else pd.DataFrame(),
                "config": meta.get("config") or {}}

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"


class RunStoreDataset(LocalVersionedDataset[Any]):
    """Loads a :class:`RunStore` over the project's data folder (reads nothing until asked)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        super().__init__(filepath, None, metadata)

    def load(self) -> RunStore:
        return RunStore(self.filepath)

    def save(self, data: Any) -> None:
        raise NotImplementedError("the run store is read-only: runs are saved through their own entries")

    def _exists(self) -> bool:
        return True
