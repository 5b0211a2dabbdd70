"""Checkpoints of a training state on disk: orbax arrays + a JSON description, written atomically.

Layout of one checkpoint directory::

    <path>/state/      orbax (OCDBT) array store of the state as nested dicts
    <path>/meta.json   what the state is: config, counters, format version

A checkpoint is written under a temporary name and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

FORMAT_VERSION = 1
_STATE, META_FILE = "state", "meta.json"


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


def save_checkpoint(path: str | os.PathLike, state: Any, meta: dict[str, Any]) -> None:
    """Write ``state`` (any pytree of arrays) and ``meta`` (JSON-able) to the directory ``path`` (must not exist)."""
    with writing_directory(path) as partial:
        tree = serialization.to_state_dict(jax.device_get(state))
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(partial / _STATE, tree)
        checkpointer.wait_until_finished()
        (partial / META_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, **meta}, indent=2,
                                                    sort_keys=True))


def load_checkpoint(path: str | os.PathLike, template: Any = None) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint: ``(state, meta)``. With ``template`` the state is restored into that pytree's type
    (e.g. a training-state dataclass); without it, as nested dicts of numpy arrays."""
    path = Path(path).absolute()
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint: {META_FILE} is missing")
    meta = json.loads(meta_file.read_text())
    raw = ocp.StandardCheckpointer().restore(path / _STATE)
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
