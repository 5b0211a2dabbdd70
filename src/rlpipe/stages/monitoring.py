"""What every train node needs around its training loop: progress display, TensorBoard, periodic checkpoints."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import generate_timestamp
from kedro.utils import find_kedro_project

from rlpipe.progress import TrainingProgress
from rlpipe.rl import loop, parallel
from rlpipe.rl.checkpoint import CheckpointManager, CorruptCheckpointError, find_resumable, load_checkpoint
from rlpipe.rl.config import ConfigError, to_dict

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
    resume: tuple[Any, loop.Resume] | None = None  # pass to the algorithm's train(): state tree and loop progress
    last_checkpoint: Path | None = None

    def on_progress(self, row: dict[str, Any]) -> None:
        self.progress.update(row)
        if self.writer is not None:
            for name, value in row.items():
                if isinstance(value, (int, float)) and value == value and name != "env_steps":
                    self.writer.add_scalar(f"train/{name}", value, global_step=int(row["env_steps"]))

    def on_checkpoint(self, env_steps: int, state: Any, progress: dict[str, Any]) -> None:
        started = time.perf_counter()
        path = self.checkpoints.save(env_steps, state, {**self.meta, "progress": progress})
        self.last_checkpoint = path
        logger.info("%s: checkpoint at %d env steps in %.2f s: %s", self.label, env_steps,
                    time.perf_counter() - started, path)

    def outputs(self, final_state: Any, history: list[dict[str, Any]]) -> tuple[dict[str, Any], pd.DataFrame]:
        """The train node's outputs: the ``<algo>.agent`` artifact (final full state and what it is) and the
        history table (columns in the loop's order, also for rows that came back from a resumed checkpoint)."""
        agent = {"state": final_state, "meta": {**self.meta, "env_steps": int(history[-1]["env_steps"])}}
        return agent, pd.DataFrame(history, columns=list(history[-1]))


def monitored_training(algorithm: str, config: Any, train: Callable[..., tuple[Any, list[dict[str, Any]]]],
                       scenarios_train: pd.DataFrame, scenarios_eval: pd.DataFrame,
                       *state: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """A train node's body for any algorithm: ``train(config, spec, train_scenarios, *state, key, eval_scenarios=,
    on_progress=, on_checkpoint=, resume=)`` inside a :func:`training_run`; returns the agent and history outputs."""
    from rlpipe.rl.envs import make_env, scenarios_to_batch
    from rlpipe.rl.keys import stage_key

    spec = make_env(config.env.id)
    train_batch = scenarios_to_batch(scenarios_train, spec, f"{algorithm}.scenarios_train")
    eval_batch = scenarios_to_batch(scenarios_eval, spec, f"{algorithm}.scenarios_eval")
    with training_run(algorithm, config) as run:
        final, history = train(config, spec, train_batch, *state, stage_key(config.seed, "train"),
                               eval_scenarios=eval_batch, on_progress=run.on_progress,
                               on_checkpoint=run.on_checkpoint, resume=run.resume)
    return run.outputs(final, history)


@contextmanager
def training_run(algorithm: str, config: Any) -> Iterator[TrainingRun]:
    """Set up checkpoints (``<checkpoint_dir>/<run>/step_N``), progress and optional TensorBoard; with
    ``train.resume``, find the checkpoint to continue from. The run is marked complete when the block finishes."""
    base = project_path(config.train.checkpoint_dir)
    meta = {"algorithm": algorithm, "config": to_dict(config), "num_devices": parallel.device_count()}
    resume, run_dir = None, None
    if config.train.resume:
        resume, run_dir = _resume_point(algorithm, config, base)
    if run_dir is None:
        run_dir = base / f"{generate_timestamp()}-{os.getpid()}"  # the pid keeps concurrent runs apart
    checkpoints = CheckpointManager(run_dir, config.train.keep_checkpoints)
    if resume is not None:
        for moved in checkpoints.set_aside_after(resume[1].env_steps):
            logger.warning("%s: set aside %s (newer than the checkpoint resumed)", algorithm, moved)
    writer = None
    if config.tracking.tensorboard:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(logdir=str(project_path(config.tracking.tensorboard_dir) / algorithm / run_dir.name))
    label = f"{algorithm}.train"
    run = None
    try:
        with TrainingProgress(label, config.train.total_env_steps) as progress:
            run = TrainingRun(label, meta, checkpoints, progress, writer, resume)
            yield run
        checkpoints.mark_complete()
    except loop.NonFiniteError as exc:
        kept = run.last_checkpoint if run and run.last_checkpoint else "none (no checkpoint was written yet)"
        raise loop.NonFiniteError(f"{algorithm}: {exc}. The last finite checkpoint: {kept}") from exc
    finally:
        if writer is not None:
            writer.close()


def _resume_point(algorithm: str, config: Any, base: Path) -> tuple[tuple[Any, loop.Resume] | None, Path | None]:
    """The state and progress of the newest intact checkpoint of the newest interrupted run, or (None, None)."""
    unreadable: set[Path] = set()
    while True:
        found = find_resumable(base, frozenset(unreadable))
        if found is None:
            logger.warning("%s: train.resume is set but %s holds no interrupted run with a checkpoint: starting fresh",
                           algorithm, base)
            return None, None
        _check_same_config(algorithm, config, found.meta)
        try:
            tree, meta = load_checkpoint(found.path)
        except CorruptCheckpointError as exc:  # verified files, yet the store would not read: skip this one
            logger.warning("%s: %s; trying the checkpoint before it", algorithm, exc)
            unreadable.add(found.path)
            continue
        logger.info("%s: resuming %s from %s (%d env steps)", algorithm, found.run_dir.name, found.path,
                    meta["env_steps"])
        return (tree, loop.Resume.from_meta(meta)), found.run_dir


def _check_same_config(algorithm: str, config: Any, meta: dict[str, Any]) -> None:
    """A run resumes only under the config it started with (``train.resume`` aside)."""
    now, then = _flat(to_dict(config)), _flat(meta["config"])
    changed = sorted(k for k in now.keys() | then.keys() if k != "train.resume" and now.get(k) != then.get(k))
    if changed:
        details = "; ".join(f"{k}: checkpoint {then.get(k)!r}, now {now.get(k)!r}" for k in changed[:5])
        raise ConfigError(f"{algorithm}.{changed[0]}", f"differs from the run being resumed ({details}); resume with "
                                                       "the same config, or set train.resume=false to start afresh")
    if meta.get("num_devices") != parallel.device_count():
        raise ConfigError(f"{algorithm}.train.resume", f"the run being resumed used {meta.get('num_devices')} "
                                                       f"device(s), this process has {parallel.device_count()}")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
