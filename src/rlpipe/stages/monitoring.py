"""What a train node reports while it runs: the progress display and, optionally, TensorBoard scalars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kedro.utils import find_kedro_project

from rlpipe.progress import TrainingProgress


def project_path(path: str) -> Path:
    """Relative paths in config are relative to the Kedro project root (not the cwd of a notebook)."""
    p = Path(path)
    return p if p.is_absolute() else (find_kedro_project(Path.cwd()) or Path.cwd()) / p


@contextmanager
def training_monitor(label: str, config: Any, run_name: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield the ``on_progress`` callback of a training loop: progress display, plus TensorBoard when configured."""
    total = config.train.total_env_steps
    writer = None
    if config.tracking.tensorboard:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(logdir=str(project_path(config.tracking.tensorboard_dir) / run_name))
    with TrainingProgress(label, total) as progress:

        def on_progress(row: dict[str, Any]) -> None:
            progress.update(row)
            if writer is not None:
                for name, value in row.items():
                    if isinstance(value, (int, float)) and value == value and name != "env_steps":
                        writer.add_scalar(f"train/{name}", value, global_step=int(row["env_steps"]))

        try:
            yield on_progress
        finally:
            if writer is not None:
                writer.close()
