"""Checkpoints of a training state on disk: orbax arrays + a JSON description, written atomically, verified on read.

Layout of one checkpoint directory::

    <path>/state/      orbax (OCDBT) array store of the state as nested dicts
    <path>/meta.json   what the state is (config, counters, format version) and the size and SHA-256 of every
                       file under state/, so a truncated or corrupted checkpoint is detected before it is used

A checkpoint is written under a temporary name and renamed into place, so a reader never sees half of one.
Periodic checkpoints of one training run live in ``<checkpoint_dir>/<run>/step_<env steps>``; a run that finished
gets a ``COMPLETE`` file, so the runs without one are the interrupted ones that ``find_resumable`` offers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
_STATE, META_FILE, COMPLETE_FILE = "state", "meta.json", "COMPLETE"


class CorruptCheckpointError(RuntimeError):
    """A checkpoint on disk is incomplete or its files do not match what was written."""


@contextmanager
def writing_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory to fill; it becomes ``path`` only when the block completes.

    ``path`` must not exist: artifacts are never overwritten. A crash leaves at most a hidden ``.name.partial-PID``.
    """
    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"{path} exists already; artifacts are never overwritten")
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.rename(partial, path)


def _fingerprints(folder: Path) -> dict[str, list]:
    out = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[file.relative_to(folder).as_posix()] = [file.stat().st_size, hashlib.sha256(file.read_bytes()).hexdigest()]
    return out


def save_checkpoint(path: str | os.PathLike, state: Any, meta: dict[str, Any]) -> None:
    """Write ``state`` (any pytree of arrays) and ``meta`` (JSON-able) to the directory ``path`` (must not exist)."""
    with writing_directory(path) as partial:
        tree = serialization.to_state_dict(jax.device_get(state))
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(partial / _STATE, tree)
        checkpointer.wait_until_finished()
        meta = {"format_version": FORMAT_VERSION, **meta, "files": _fingerprints(partial / _STATE)}
        (partial / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's meta, after checking every state file against its recorded size and hash."""
    path = Path(path).absolute()
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"{path}: {META_FILE} is missing or unreadable ({exc})") from exc
    recorded = meta.get("files")
    if recorded is not None:
        actual = _fingerprints(path / _STATE) if (path / _STATE).is_dir() else {}
        for name, (size, digest) in recorded.items():
            if name not in actual:
                raise CorruptCheckpointError(f"{path}: state file {name} is missing")
            if actual[name] != [size, digest]:
                raise CorruptCheckpointError(f"{path}: state file {name} does not match what was written "
                                             f"({actual[name][0]} bytes, expected {size})")
    return meta


def load_checkpoint(path: str | os.PathLike, template: Any = None) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint: ``(state, meta)``. With ``template`` the state is restored into that pytree's type
    (e.g. a training-state dataclass); without it, as nested dicts of numpy arrays."""
    path = Path(path).absolute()
    if not (path / META_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint: {META_FILE} is missing")
    meta = verify_checkpoint(path)
    try:
        raw = ocp.StandardCheckpointer().restore(path / _STATE)
    except Exception as exc:  # orbax/tensorstore report damage in many ways
        raise CorruptCheckpointError(f"{path}: the array store cannot be read ({exc})") from exc
    raw = jax.tree.map(np.asarray, raw)
    if template is None:
        return raw, meta
    return serialization.from_state_dict(template, raw), meta


class CheckpointManager:
    """Periodic checkpoints of one run: ``<directory>/step_<env steps>``, keeping the newest ``keep``."""

    def __init__(self, directory: str | os.PathLike, keep: int):
        self.directory = Path(directory)
        self.keep = keep

    def steps(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name[5:]) for p in self.directory.glob("step_*") if (p / META_FILE).is_file())

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:010d}"

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> Path:
        path = self.path(step)
        save_checkpoint(path, state, {**meta, "env_steps": step})
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return path

    def set_aside_after(self, step: int) -> list[Path]:
        """Rename the checkpoints newer than ``step`` (damaged ones a resume skipped) out of the way, so training on
        from ``step`` can write its own; nothing is deleted."""
        moved = []
        for later in [s for s in self.steps() if s > step] + self._unverified_after(step):
            source = self.path(later)
            if source.exists():
                target = self.directory / f"set-aside-{source.name}-{os.getpid()}"
                source.rename(target)
                moved.append(target)
        return moved

    def _unverified_after(self, step: int) -> list[int]:
        """Step folders without meta.json (torn writes) beyond ``step``."""
        if not self.directory.is_dir():
            return []
        return [int(p.name[5:]) for p in self.directory.glob("step_*") if not (p / META_FILE).is_file()
                and p.name[5:].isdigit() and int(p.name[5:]) > step]

    def mark_complete(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / COMPLETE_FILE).write_text("training finished\n")

    @property
    def complete(self) -> bool:
        return (self.directory / COMPLETE_FILE).is_file()


@dataclass(frozen=True)
class Resumable:
    run_dir: Path
    path: Path
    meta: dict[str, Any]


def find_resumable(checkpoint_dir: str | os.PathLike, skip: frozenset[Path] = frozenset()) -> Resumable | None:
    """The newest verified checkpoint of the newest interrupted run (one without ``COMPLETE``) under
    ``checkpoint_dir``; corrupt or incomplete checkpoints (and those in ``skip``) are reported and passed over for
    the one before them."""
    base = Path(checkpoint_dir)
    if not base.is_dir():
        return None
    runs = sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    for run_dir in runs:
        manager = CheckpointManager(run_dir, keep=1)
        if manager.complete:
            continue
        for step in reversed(manager.steps()):
            path = manager.path(step)
            if path in skip:
                continue
            try:
                return Resumable(run_dir, path, verify_checkpoint(path))
            except CorruptCheckpointError as exc:
                logger.warning("skipping a damaged checkpoint: %s", exc)
        return None  # the newest interrupted run has nothing usable: start fresh rather than go further back
    return None
