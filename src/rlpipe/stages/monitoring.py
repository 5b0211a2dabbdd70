"""The train stage of every algorithm: the training core inside what a run needs around it (progress display,
TensorBoard, periodic checkpoints, resume, and in a multi-process run the agreement of all processes on them)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import generate_timestamp
from kedro.utils import find_kedro_project

from rlpipe.progress import TrainingProgress
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import loop, mesh
from rlpipe.rl.checkpoint import (
    CheckpointManager,
    CorruptCheckpointError,
    StoredCheckpoint,
    find_resumable,
    load_checkpoint,
)
from rlpipe.rl.config import to_dict
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.seeds import stage_keys

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
        _injected_pause(self.checkpoints_written)

    def outputs(self, history: list[dict[str, Any]],
                curve: list[dict[str, Any]] = ()) -> tuple[StoredCheckpoint, pd.DataFrame]:
        """The train node's ``agent`` (the final checkpoint itself: the catalog entry takes it over, no second
        copy) and history table (see ``history_table``)."""
        return StoredCheckpoint(self.last_checkpoint), history_table(history, curve)


def history_table(history: list[dict[str, Any]], curve: list[dict[str, Any]] = ()) -> pd.DataFrame:
    """The training history: a row per point of the curve the compiled chunks recorded (training metrics at
    ``history_points_per_log`` points per progress interval), the per-chunk columns (evaluations, timings, early
    stopping) on the row where each chunk ended; without a curve, one row per chunk. Columns in the loop's order,
    also for rows that came back from a resumed checkpoint (a chunk from before curves were recorded keeps its
    own row)."""
    chunks = pd.DataFrame(history, columns=list(history[-1]))
    if not curve:
        return chunks
    points = pd.DataFrame(list(curve)).set_index("env_steps")
    by_step = chunks.set_index("env_steps")
    merged = points.join(by_step[[c for c in by_step.columns if c not in points.columns]], how="outer")
    legacy = merged.index.difference(points.index)  # chunk rows no point stands for
    shared = [c for c in points.columns if c in by_step.columns]
    merged.loc[legacy, shared] = by_step.loc[legacy, shared]
    merged = merged.reset_index()
    order = [c for c in chunks.columns if c in merged.columns]
    return merged[order + [c for c in merged.columns if c not in order]]


def train(config: Any, initial_state: Any, lineage: dict[str, Any], scenarios_train: pd.DataFrame,
          scenarios_eval: pd.DataFrame, device_data: dict[str, Any] | None = None
          ) -> tuple[StoredCheckpoint, pd.DataFrame, dict[str, Any], dict[str, bytes], pd.DataFrame]:
    """Train to ``total_env_steps`` with periodic checkpoints and evaluations, on every device of every process;
    returns the agent (the final checkpoint), the history, the evaluation of the final policy, the videos of
    the policy during training (``tracking.video_every_env_steps``; none when 0) and the training scenarios' draw
    weights at the end (see ``scenario_weights``).

    ``lineage`` names the stored agent the run started from (``train.init_from``; empty otherwise): the agent's
    meta keeps it. ``device_data`` are host arrays split over the devices for their initial state (SAC's prefill
    transitions).
    """
    from rlpipe.rl import training
    from rlpipe.rl.envs import env_spec, scenarios_to_batch

    algorithm = algorithms.for_config(config)
    name = algorithm.name
    spec = env_spec(config.env)
    train_batch = scenarios_to_batch(scenarios_train, spec, f"{name}.scenarios_train")
    eval_batch = scenarios_to_batch(scenarios_eval, spec, f"{name}.scenarios_eval")
    videos = TrainingVideos(config, scenarios_eval) if config.tracking.video_every_env_steps else None
    with training_run(algorithm, config, lineage) as run:
        result = training.train(algorithm, config, spec, train_batch, initial_state,
                                stage_keys(config, "train"), device_data=device_data,
                                eval_scenarios=eval_batch, on_progress=run.on_progress,
                                on_checkpoint=run.on_checkpoint, resume=run.resume,
                                on_policy=(config.tracking.video_every_env_steps, videos) if videos else None)
    if mesh.process_count() > 1:  # the processes agree if their lines show one hash
        logger.info("%s.train: final training state %s in process %d of %d", name,
                    _fingerprint(result.state["training"]), mesh.process_index(), mesh.process_count())
    agent, history = run.outputs(result.history, result.curve)
    weights = scenario_weights(scenarios_train, result.curriculum)
    return agent, history, result.final_evaluation, videos.files if videos else {}, weights


def scenario_weights(scenarios_train: pd.DataFrame, curriculum: dict[str, Any] | None) -> pd.DataFrame:
    """The probability of drawing each training scenario at a reset when training ended (``weight``) and the
    return of the curriculum's last evaluation it came from (``return``; NaN before any, or without a curriculum,
    when the weights are uniform); a multi-seed run has a row per seed and scenario (``seed_index``)."""
    import numpy as np

    ids = scenarios_train["scenario_id"].to_numpy()
    if curriculum is None:
        return pd.DataFrame({"scenario_id": ids, "weight": np.full(len(ids), 1.0 / len(ids)),
                             "return": np.full(len(ids), np.nan)})
    weights, returns = np.asarray(curriculum["weights"], np.float64), np.asarray(curriculum["returns"], np.float64)
    if weights.ndim == 1:
        return pd.DataFrame({"scenario_id": ids, "weight": weights, "return": returns})
    seeds = weights.shape[0]
    return pd.DataFrame({"seed_index": np.repeat(np.arange(seeds, dtype=np.int64), len(ids)),
                         "scenario_id": np.tile(ids, seeds), "weight": weights.ravel(), "return": returns.ravel()})


class TrainingVideos:
    """``on_policy`` callback of the training core: a short film of the current deterministic policy on the
    animation scenario (``tracking.animation_scenario`` of the eval scenarios), kept as ``step_<env steps>.gif``
    (and ``.mp4`` when an ffmpeg is at hand) and logged to the active MLflow run at once, so a run that fails
    later keeps the videos made so far there. Process 0 films; the others do nothing."""

    def __init__(self, config: Any, scenarios_eval: pd.DataFrame):
        from rlpipe.stages.reporting import EpisodeFilm

        self.label = f"{algorithms.for_config(config).name}.train"
        self.film = EpisodeFilm(config.env, scenarios_eval, config.tracking.animation_scenario) \
            if mesh.is_primary() else None
        self.files: dict[str, bytes] = {}

    def __call__(self, env_steps: int, policy: dict[str, Any]) -> None:
        if self.film is None:
            return
        from rlpipe.stages.reporting import encode

        started = time.perf_counter()
        title = f"{self.film.env_id} scenario {self.film.scenario_id}, {env_steps:,} env steps"
        frames, stride = self.film.frames(policy, title)
        made = {f"step_{env_steps:010d}.{kind}": data for kind, data in encode(frames, stride, mp4=True).items()}
        self.files.update(made)
        _log_to_mlflow(made, f"{self.label.split('.')[0]}/training_videos")
        logger.debug("%s: video at %d env steps in %.2f s", self.label, env_steps, time.perf_counter() - started)


def _log_to_mlflow(files: dict[str, bytes], artifact_path: str) -> None:
    """Files into the active MLflow run (if there is one), as they are made."""
    import sys
    import tempfile

    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return
    with tempfile.TemporaryDirectory(prefix="rlpipe-mlflow-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        mlflow.log_artifacts(tmp, artifact_path=artifact_path)


def _fingerprint(tree: Any) -> str:
    """A short hash of this process's copy of a replicated state: equal in every process when they agree."""
    import hashlib

    import jax
    import numpy as np

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(mesh.host_copy(tree)):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()[:16]


def will_resume(config: Any) -> bool:
    """Whether ``train.resume`` is set and there is an interrupted run to continue (so a prefill is not needed)."""
    if not config.train.resume:
        return False
    found = find_resumable(project_path(config.train.checkpoint_dir)) if mesh.is_primary() else None
    return mesh.broadcast_text("yes" if found is not None else "") == "yes"


@contextmanager
def training_run(algorithm: Any, config: Any, lineage: dict[str, Any] | None = None) -> Iterator[TrainingRun]:
    """Set up checkpoints (``<checkpoint_dir>/<run>/step_N``), progress and optional TensorBoard; with
    ``train.resume``, find the checkpoint to continue from. The run is marked complete when the block finishes.
    Every process of a multi-process run takes part (the checkpoints are written together); process 0 decides
    the run folder and the checkpoint to resume, and alone shows progress and writes TensorBoard."""
    name = algorithm.name
    base = project_path(config.train.checkpoint_dir)
    meta = {"algorithm": name, "config": to_dict(config), "num_devices": mesh.device_count(),
            "num_processes": mesh.process_count()}
    if lineage:
        meta["parent"] = dict(lineage)
    resume, run_dir = None, None
    if config.train.resume:
        resume, run_dir = _resume_point(name, config, base)
    if run_dir is None:  # the pid keeps concurrent runs apart; every process uses process 0's name
        run_dir = Path(mesh.broadcast_text(str(base / f"{generate_timestamp()}-{os.getpid()}")))
    checkpoints = CheckpointManager(run_dir, config.train.keep_checkpoints)
    if resume is not None and mesh.is_primary():
        for moved in checkpoints.set_aside_after(resume.env_steps):
            logger.warning("%s: set aside %s (newer than the checkpoint resumed)", name, moved)
    mesh.barrier("training-run-ready")
    writer = None
    if config.tracking.tensorboard and mesh.is_primary():
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(logdir=str(project_path(config.tracking.tensorboard_dir) / name / run_dir.name))
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


def _resume_point(name: str, config: Any, base: Path) -> tuple[loop.Resume | None, Path | None]:
    """The state and progress of the newest intact checkpoint of the newest interrupted run, or (None, None).
    Process 0 chooses; every process reads the one it chose."""
    chosen = mesh.broadcast_text(str(_choose_checkpoint(name, config, base) or "") if mesh.is_primary() else None)
    if not chosen:
        logger.warning("%s: train.resume is set but %s holds no interrupted run with a checkpoint: starting fresh",
                       name, base)
        return None, None
    tree, meta = load_checkpoint(chosen)
    _check_same_config(name, config, meta)
    path = Path(chosen)
    logger.info("%s: resuming %s from %s (%d env steps)", name, path.parent.name, path, meta["env_steps"])
    return loop.Resume.from_checkpoint(tree, meta), path.parent


def _choose_checkpoint(name: str, config: Any, base: Path) -> Path | None:
    """The newest checkpoint that verifies and reads, of the newest interrupted run."""
    unreadable: set[Path] = set()
    while True:
        found = find_resumable(base, frozenset(unreadable))
        if found is None:
            return None
        try:
            load_checkpoint(found.path, ["iteration"])
        except CorruptCheckpointError as exc:  # verified files, yet the store would not read: skip this one
            logger.warning("%s: %s; trying the checkpoint before it", name, exc)
            unreadable.add(found.path)
            continue
        return found.path


def _injected_pause(checkpoints_written: int) -> None:
    """Fault injection for tests that kill a run mid-training without racing it: with
    ``RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS=N`` (and, if set, only in process ``RLPIPE_FAULT_PROCESS``) the run says
    so on stderr after its N-th checkpoint and waits (at most 10 minutes) to be killed."""
    wanted = os.environ.get("RLPIPE_FAULT_PAUSE_AFTER_CHECKPOINTS")
    only = os.environ.get("RLPIPE_FAULT_PROCESS")
    if not wanted or int(wanted) != checkpoints_written or (only and int(only) != mesh.process_index()):
        return
    import sys

    print(f"RLPIPE_FAULT: paused after checkpoint {checkpoints_written} in process {mesh.process_index()}",
          file=sys.stderr, flush=True)
    time.sleep(600)


def _check_same_config(algorithm: str, config: Any, meta: dict[str, Any]) -> None:
    """A run resumes only under the config it started with (``train.resume`` aside)."""
    # keys added since the checkpoint was written count as their defaults
    stored = _flat(meta["config"])
    defaults = {k: v for k, v in _flat(to_dict(type(config)())).items() if not _overlaps(k, stored)}
    now, then = _flat(to_dict(config)), {**defaults, **stored}
    changed = sorted(k for k in now.keys() | then.keys() if k != "train.resume" and now.get(k) != then.get(k))
    if changed:
        details = "; ".join(f"{k}: checkpoint {then.get(k)!r}, now {now.get(k)!r}" for k in changed[:5])
        raise ConfigError(f"{algorithm}.{changed[0]}", f"differs from the run being resumed ({details}); resume with "
                                                       "the same config, or set train.resume=false to start afresh")
    if "parts" not in meta:
        raise ConfigError(f"{algorithm}.train.resume", f"the checkpoint has format {meta.get('format_version')} "
                                                       "(written by an rlpipe before the device mesh); it can be "
                                                       "loaded for inspection but not resumed")


def _overlaps(key: str, flat: dict[str, Any]) -> bool:
    """Whether ``flat`` has ``key`` itself, a key inside it (``key.x``), or one it lies inside: a default such as
    ``scenarios.ranges: {}`` or ``scenarios.curriculum: null`` must not stand beside the values a config gave."""
    return any(k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.") for k in flat)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
