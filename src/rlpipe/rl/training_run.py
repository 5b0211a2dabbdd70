"""What a training run needs around the training core: its folder of periodic checkpoints, progress display,
optional TensorBoard, the decision to resume an interrupted run (taken once per run), and in a multi-process run
the agreement of all processes on them. No Kedro: relative paths are resolved against a project root passed in.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from rlpipe.faults import fault_point
from rlpipe.progress import TrainingProgress
from rlpipe.rl import loop, mesh
from rlpipe.rl.checkpoint import (
    CheckpointManager,
    CorruptCheckpointError,
    StoredCheckpoint,
    check_writable,
    find_resumable,
    load_checkpoint,
)
from rlpipe.rl.config import dotted, resume_mode, to_dict
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.seeds import Seeds

logger = logging.getLogger(__name__)


def resolve(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A config path: as given when absolute, else under ``root`` (the project root; by default the cwd)."""
    p = Path(path)
    return p if p.is_absolute() else Path(root if root is not None else Path.cwd()) / p


@dataclass(frozen=True)
class ResumePoint:
    """Where a run starts: afresh (``checkpoint`` None) or from the checkpoint of an interrupted run, which the
    run continues in its own folder. Decided once per run (``find_resume``) and handed to every stage that
    depends on it (the prefill, which is skipped, and the training, which restores the checkpoint)."""

    checkpoint: Path | None = None

    @property
    def resuming(self) -> bool:
        return self.checkpoint is not None


def find_resume(config: Any, root: str | os.PathLike | None = None) -> ResumePoint:
    """With ``train.resume`` (or ``RLPIPE_RESUME``, which overrides it): the newest intact checkpoint of the newest
    interrupted run under ``train.checkpoint_dir``; ``true`` insists it was written under the same config,
    ``auto`` takes the newest interrupted run of the same config and otherwise starts fresh. Process 0 chooses;
    every process gets its choice. First of all, the checkpoint directory must be writable."""
    from rlpipe.rl import algorithm as algorithms

    name = algorithms.for_config(config).name
    mode = resume_mode(config.train, f"{name}.train")
    base = resolve(config.train.checkpoint_dir, root)
    check_writable(base)  # a read-only or full disk: said now, not after the compile
    if mode is False:
        return ResumePoint()
    if mode == "auto":
        return _find_same_config(name, config, base)
    chosen = mesh.broadcast_text(str(_choose_checkpoint(name, base) or "") if mesh.is_primary() else None)
    if not chosen:
        logger.warning("%s: train.resume is set but %s holds no interrupted run with a checkpoint: starting fresh",
                       name, base)
        return ResumePoint()
    check_same_config(name, config, StoredCheckpoint(chosen).meta)
    return ResumePoint(Path(chosen))


def _find_same_config(name: str, config: Any, base: Path) -> ResumePoint:
    """``resume: auto``: the newest interrupted run of this very config, else a fresh start; one line says which,
    and why the interrupted runs of other configs were left alone (a run never continues another config's)."""
    others: list[str] = []

    def same_config(path: Path, meta: dict[str, Any]) -> bool:
        difference = config_difference(config, meta)
        if difference is not None:
            others.append(f"{path.parent.name} ({difference[1]})")
        return difference is None

    chosen = None
    if mesh.is_primary():
        chosen = _choose_checkpoint(name, base, same_config)
        if chosen is not None:
            logger.info("%s: train.resume is auto: resuming %s, the interrupted run of this config, from %s",
                        name, chosen.parent.name, chosen.name)
        elif others:
            logger.warning("%s: train.resume is auto: starting fresh, as no interrupted run in %s has this config "
                           "(not continued: %s)", name, base, "; ".join(others))
        else:
            logger.info("%s: train.resume is auto: starting fresh, as %s holds no interrupted run", name, base)
    chosen = mesh.broadcast_text(str(chosen or "") if mesh.is_primary() else None)
    return ResumePoint(Path(chosen)) if chosen else ResumePoint()


def _choose_checkpoint(name: str, base: Path,
                       accept: Callable[[Path, dict[str, Any]], bool] | None = None) -> Path | None:
    """The newest checkpoint that verifies and reads, of the newest interrupted run (that ``accept`` takes)."""
    unreadable: set[Path] = set()
    while True:
        found = find_resumable(base, frozenset(unreadable), accept)
        if found is None:
            return None
        try:
            load_checkpoint(found.path, ["iteration"])
        except CorruptCheckpointError as exc:  # verified files, yet the store would not read: skip this one
            logger.warning("%s: %s; trying the checkpoint before it", name, exc)
            unreadable.add(found.path)
            continue
        return found.path


@dataclass
class TrainingRun:
    """Callbacks for ``rlpipe.rl.loop.run`` and the checkpoint metadata of one training run."""

    label: str
    meta: dict[str, Any]
    checkpoints: CheckpointManager
    progress: TrainingProgress
    writer: Any = None
    resume: loop.Resume | None = None  # pass to the training core: the state tree and the loop's progress
    last_checkpoint: Path | None = None
    checkpoints_written: int = 0

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
        self.checkpoints_written += 1
        logger.debug("%s: checkpoint at %d env steps in %.2f s: %s", self.label, env_steps,
                     time.perf_counter() - started, path)
        fault_point("after_checkpoint", self.checkpoints_written)

    def outputs(self, history: list[dict[str, Any]], curve: list[dict[str, Any]] = (),
                episodes: list[dict[str, Any]] = ()) -> tuple[StoredCheckpoint, pd.DataFrame]:
        """The agent (the final checkpoint itself: a catalog entry takes it over, no second copy) and the history
        table (see ``history_table``)."""
        return StoredCheckpoint(self.last_checkpoint), history_table(history, curve, episodes)


def history_table(history: list[dict[str, Any]], curve: list[dict[str, Any]] = (),
                  episodes: list[dict[str, Any]] = ()) -> pd.DataFrame:
    """The training history: a row per point of the curve the compiled chunks recorded (training metrics at
    ``history_points_per_log`` points per progress interval), the per-chunk columns (evaluations, timings, early
    stopping) on the row where each chunk ended; without a curve, one row per chunk. Columns in the loop's order,
    also for rows that came back from a resumed checkpoint (a chunk from before curves were recorded keeps its
    own row); with ``episodes``, a row per finished training episode carries its ``episode_return`` (the points'
    means of the same episodes are left out)."""
    chunks = pd.DataFrame(history, columns=list(history[-1]))
    if not curve:
        return chunks
    points = pd.DataFrame(list(curve)).set_index("env_steps")
    by_step = chunks.set_index("env_steps")
    merged = points.join(by_step[[c for c in by_step.columns if c not in points.columns]], how="outer")
    legacy = merged.index.difference(points.index)  # chunk rows no point stands for
    shared = [c for c in points.columns if c in by_step.columns]
    merged.loc[legacy, shared] = by_step.loc[legacy, shared]
    if episodes:
        merged.loc[points.index, "episode_return"] = float("nan")
    merged = merged.reset_index()
    order = [c for c in chunks.columns if c in merged.columns]
    merged = merged[order + [c for c in merged.columns if c not in order]]
    if not episodes:
        return merged
    table = pd.concat([merged, pd.DataFrame(episodes)], ignore_index=True)
    return table.sort_values("env_steps", kind="stable", ignore_index=True)[merged.columns]


def run_folder_name() -> str:
    """A new run folder's name: the UTC time to the millisecond (the form of a catalog version, so folders sort by
    age) and the pid, which keeps concurrent runs apart."""
    stamp = datetime.now(tz=timezone.utc).strftime("%Y-%m-%dT%H.%M.%S.%f")
    return f"{stamp[:-3]}Z-{os.getpid()}"


@contextmanager
def training_run(algorithm: Any, config: Any, lineage: dict[str, Any] | None = None,
                 start: ResumePoint = ResumePoint(), root: str | os.PathLike | None = None) -> Iterator[TrainingRun]:
    """Set up checkpoints (``<checkpoint_dir>/<run>/step_N``), progress and optional TensorBoard; when ``start``
    resumes, load its checkpoint and continue in its run folder. The run is marked complete when the block
    finishes. Every process of a multi-process run takes part (the checkpoints are written together); process 0
    decides the run folder, and alone shows progress and writes TensorBoard."""
    name = algorithm.name
    # the devices each seed's per-device state is split over: what a resume redistributes it from
    meta = {"algorithm": name, "config": to_dict(config), "num_devices": Seeds.of(config).data_devices,
            "num_processes": mesh.process_count()}
    if lineage:
        meta["parent"] = dict(lineage)
    resume, run_dir = None, None
    if start.resuming:
        tree, stored = load_checkpoint(start.checkpoint)
        resume, run_dir = loop.Resume.from_checkpoint(tree, stored), start.checkpoint.parent
        logger.info("%s: resuming %s from %s (%d env steps)", name, run_dir.name, start.checkpoint,
                    stored["env_steps"])
    if run_dir is None:  # every process uses process 0's name
        run_dir = Path(mesh.broadcast_text(str(resolve(config.train.checkpoint_dir, root) / run_folder_name())))
    checkpoints = CheckpointManager(run_dir, config.train.keep_checkpoints)
    if resume is not None and mesh.is_primary():
        for moved in checkpoints.set_aside_after(resume.env_steps):
            logger.warning("%s: set aside %s (newer than the checkpoint resumed)", name, moved)
    mesh.barrier("training-run-ready")
    writer = None
    if config.tracking.tensorboard and mesh.is_primary():
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(logdir=str(resolve(config.tracking.tensorboard_dir, root) / name / run_dir.name))
    label = f"{name}.train"
    run = None
    try:
        with TrainingProgress(label, config.train.total_env_steps, algorithm.progress_labels,
                              quiet=not mesh.is_primary()) as progress:
            run = TrainingRun(label, meta, checkpoints, progress, writer, resume)
            yield run
        checkpoints.mark_complete()
    except loop.NonFiniteError as exc:
        kept = run.last_checkpoint if run and run.last_checkpoint else "none (no checkpoint was written yet)"
        raise loop.NonFiniteError(f"{name}: {exc}. The last finite checkpoint: {kept}") from exc
    finally:
        if writer is not None:
            writer.close()


def check_same_config(algorithm: str, config: Any, meta: dict[str, Any]) -> None:
    """A run resumes only under the config it started with (``train.resume`` aside)."""
    difference = config_difference(config, meta)
    if difference is None:
        return
    key, problem = difference
    if key == "train.resume":
        raise ConfigError(f"{algorithm}.train.resume", f"{problem}; it can be loaded for inspection but not resumed")
    raise ConfigError(f"{algorithm}.{key}", f"differs from the run being resumed ({problem}); resume with the same "
                                            "config, or set train.resume=false to start afresh")


def config_difference(config: Any, meta: dict[str, Any]) -> tuple[str, str] | None:
    """Why the checkpoint of ``meta`` cannot be resumed under ``config``, as (the first dotted key that differs,
    what differs), or None when it can: the same config (``train.resume`` aside) and a format that resumes."""
    # keys added since the checkpoint was written count as their defaults
    stored = dotted(meta["config"])
    defaults = {k: v for k, v in dotted(to_dict(type(config)())).items() if not _overlaps(k, stored)}
    now, then = dotted(to_dict(config)), {**defaults, **stored}
    changed = sorted(k for k in now.keys() | then.keys() if k != "train.resume" and now.get(k) != then.get(k))
    if changed:
        return changed[0], "; ".join(f"{k}: checkpoint {then.get(k)!r}, now {now.get(k)!r}" for k in changed[:5])
    if "parts" not in meta:
        return "train.resume", (f"the checkpoint has format {meta.get('format_version')} (written by an rlpipe "
                                "before the device mesh)")
    return None


def _overlaps(key: str, flat: dict[str, Any]) -> bool:
    """Whether ``flat`` has ``key`` itself, a key inside it (``key.x``), or one it lies inside: a default such as
    ``scenarios.ranges: {}`` or ``scenarios.curriculum: null`` must not stand beside the values a config gave."""
    return any(k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.") for k in flat)
