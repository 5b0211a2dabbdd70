"""What every train node needs around its training loop: progress display, TensorBoard, periodic checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.io.core import generate_timestamp
from kedro.utils import find_kedro_project

from rlpipe.progress import TrainingProgress
from rlpipe.rl import parallel
from rlpipe.rl.checkpoint import CheckpointManager
from rlpipe.rl.config import to_dict

logger = logging.getLogger(__name__)


def project_path(path: str) -> Path:
    """Relative paths in config are relative to the Kedro project root (not the cwd of a notebook)."""
    p = Path(path)
    return p if p.is_absolute() else (find_kedro_project(Path.cwd()) or Path.cwd()) / p


@dataclass
class TrainingRun:
    """Callbacks for ``rlpipe.rl.loop.run`` and the checkpoint metadata of one training run."""

    label: str
    meta: dict[str, Any]
    checkpoints: CheckpointManager
    progress: TrainingProgress
    writer: Any = None
    history: list = field(default_factory=list)

    def on_progress(self, row: dict[str, Any]) -> None:
        self.progress.update(row)
        if self.writer is not None:
            for name, value in row.items():
                if isinstance(value, (int, float)) and value == value and name != "env_steps":
                    self.writer.add_scalar(f"train/{name}", value, global_step=int(row["env_steps"]))

    def on_checkpoint(self, env_steps: int, state: Any) -> None:
        path = self.checkpoints.save(env_steps, state, self.meta)
        logger.info("%s: checkpoint at %d env steps: %s", self.label, env_steps, path)

    def agent(self, final_state: Any, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``<algo>.agent`` catalog artifact: the final full state and what it is."""
        return {"state": final_state, "meta": {**self.meta, "env_steps": int(history[-1]["env_steps"])}}


@contextmanager
def training_run(algorithm: str, config: Any) -> Iterator[TrainingRun]:
    """Set up checkpoints (``<checkpoint_dir>/<run timestamp>/step_N``), progress and optional TensorBoard."""
    run_name = generate_timestamp()
    meta = {"algorithm": algorithm, "config": to_dict(config), "num_devices": parallel.device_count()}
    checkpoints = CheckpointManager(project_path(config.train.checkpoint_dir) / run_name,
                                    config.train.keep_checkpoints)
    writer = None
    if config.tracking.tensorboard:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(logdir=str(project_path(config.tracking.tensorboard_dir) / algorithm / run_name))
    label = f"{algorithm}.train"
    try:
        with TrainingProgress(label, config.train.total_env_steps) as progress:
            yield TrainingRun(label, meta, checkpoints, progress, writer)
    finally:
        if writer is not None:
            writer.close()
