"""Checkpoints of a training state on disk: orbax arrays + a JSON description, written atomically, verified on read.

Layout of one checkpoint directory::

    <path>/state/<part>/  one orbax (OCDBT) array store per top-level part of the state (training, device, key,
                          iteration), so a reader that needs one part (the policy: ``training``) reads only that
    <path>/meta.json      what the state is (config, counters, format version, parts) and the size and SHA-256 of
                          every file under state/, so a truncated or corrupted checkpoint is detected before use

A checkpoint is written under a temporary name and renamed into place, so a reader never sees half of one. In a
multi-process run every process calls :func:`save_checkpoint` with the same path and writes its own shards of the
arrays (orbax's multi-process save); process 0 alone writes ``meta.json`` and renames the directory into place.
Periodic checkpoints of one training run live in ``<checkpoint_dir>/<run>/step_<env steps>``; a run that finished
gets a ``COMPLETE`` file, so the runs without one are the interrupted ones that ``find_resumable`` offers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from rlpipe.rl import mesh
from rlpipe.rl.failed_writes import quiet_disk_failures

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: one store for the whole state, with a leading device axis (pmap era)
_STATE, META_FILE, COMPLETE_FILE = "state", "meta.json", "COMPLETE"


class CorruptCheckpointError(RuntimeError):
    """A checkpoint on disk is incomplete or its files do not match what was written."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written where the run keeps them (a full disk, a read-only one, ...): the run
    stops, with the checkpoints written before it left as they were."""

    def __init__(self, directory: Path, cause: str, kept: list[Path]):
        self.directory, self.cause, self.kept = directory, cause, kept
        then = "run again" if not kept else "run again with train.resume=auto to continue from it"
        before = f"the checkpoints before it are kept, the newest {kept[-1]}" if kept else \
            "no checkpoint of this run was written before it"
        super().__init__(f"cannot write a checkpoint in {directory}: {cause}; {before}. Make room (or make the "
                         f"directory writable), then {then}")


def write_failure_cause(exc: BaseException, directory: Path) -> str | None:
    """Why a write under ``directory`` failed, if the disk is the reason: the OS error in ``exc``'s chain (the
    array store wraps it in its own), else what the file system says of itself (full, read-only); None for a
    failure that is not the disk's."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            return f"{os.strerror(exc.errno)} ({errno.errorcode[exc.errno]})"
        code = re.search(r"os_error_code='(\d+)'", str(exc))  # tensorstore's form of an OS error
        if code and int(code[1]) in _DISK_ERRNOS:
            return f"{os.strerror(int(code[1]))} ({errno.errorcode[int(code[1])]})"
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None:
        return None
    disk = os.statvfs(existing)
    if disk.f_flag & os.ST_RDONLY:
        return f"{os.strerror(errno.EROFS)} (EROFS)"
    if disk.f_bavail == 0:
        return f"{os.strerror(errno.ENOSPC)} (ENOSPC)"
    return None


def check_writable(directory: str | os.PathLike) -> None:
    """Checkpoints can be written under ``directory`` (made if missing): a read-only or full disk stops a run
    before its expensive stages, with the same error a checkpoint that fails later raises."""
    directory = Path(directory).absolute()
    probe = directory / f".write-probe-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"\n")
        probe.unlink()
    except OSError as exc:
        cause = write_failure_cause(exc, directory)
        if cause is None:
            raise
        raise CheckpointWriteError(directory, cause, []) from exc


_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EIO}


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


def _fingerprints(folder: Path, parts: set[str] | None = None) -> dict[str, list]:
    out = {}
    roots = [folder / part for part in sorted(parts)] if parts is not None else [folder]
    for file in sorted(p for root in roots for p in root.rglob("*") if p.is_file()):
        out[file.relative_to(folder).as_posix()] = [file.stat().st_size, hashlib.sha256(file.read_bytes()).hexdigest()]
    return out


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` (a mapping of part name -> pytree of arrays) and ``meta`` (JSON-able) to the directory
    ``path``, which must not exist. In a multi-process run every process calls this with the same arguments."""
    path = Path(path).absolute()
    partial = path.parent / f".{path.name}.partial"  # one name for every process (a pid would differ)
    primary = mesh.is_primary()
    if primary:
        if path.exists():
            raise FileExistsError(f"{path} exists already; artifacts are never overwritten")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / _STATE).mkdir(parents=True)
    mesh.barrier(f"checkpoint-open-{path.name}")
    try:
        # numpy where this process holds the whole array: orbax writes those in about half the time of device
        # arrays (no per-shard slicing programs), a replicated one from process 0 alone
        state = {part: mesh.host_copy(tree, gather=False) for part, tree in state.items()}
        with quiet_disk_failures():  # a full disk is said once, by the CheckpointWriteError it becomes
            checkpointer = ocp.StandardCheckpointer()
            for part, tree in state.items():  # {part: tree}: a store holds a tree, never a bare array
                checkpointer.save(partial / _STATE / part, {part: serialization.to_state_dict(tree)})
            checkpointer.wait_until_finished()
            mesh.barrier(f"checkpoint-written-{path.name}")
            if primary:
                meta = {"format_version": FORMAT_VERSION, **meta, "parts": list(state),
                        "files": _fingerprints(partial / _STATE)}
                (partial / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
                os.rename(partial, path)
    except BaseException:
        if primary:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    mesh.barrier(f"checkpoint-done-{path.name}")


def verify_checkpoint(path: str | os.PathLike, parts: list[str] | None = None) -> dict[str, Any]:
    """The checkpoint's meta, after checking every state file (of ``parts`` only, if given) against its recorded
    size and hash."""
    path = Path(path).absolute()
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"{path}: {META_FILE} is missing or unreadable ({exc})") from exc
    recorded = meta.get("files")
    if recorded is not None:
        if parts is not None and "parts" in meta:
            recorded = {k: v for k, v in recorded.items() if k.split("/", 1)[0] in parts}
        actual = _fingerprints(path / _STATE, {k.split("/", 1)[0] for k in recorded}) \
            if (path / _STATE).is_dir() else {}
        for name, (size, digest) in recorded.items():
            if name not in actual:
                raise CorruptCheckpointError(f"{path}: state file {name} is missing")
            if actual[name] != [size, digest]:
                raise CorruptCheckpointError(f"{path}: state file {name} does not match what was written "
                                             f"({actual[name][0]} bytes, expected {size})")
    return meta


def load_checkpoint(path: str | os.PathLike, parts: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint: ``(state, meta)``, the state as nested dicts of numpy arrays (whatever device layout and
    process count it was written with). ``parts`` reads only those parts (and verifies only their files)."""
    path = Path(path).absolute()
    if not (path / META_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint: {META_FILE} is missing")
    meta = verify_checkpoint(path, parts)
    try:
        if "parts" not in meta:  # format 2: the whole state in one store
            state = _restore_numpy(path / _STATE)
            return ({k: state[k] for k in parts} if parts else state), meta
        return {part: _restore_numpy(path / _STATE / part)[part] for part in (parts or meta["parts"])}, meta
    except Exception as exc:  # orbax/tensorstore report damage in many ways
        raise CorruptCheckpointError(f"{path}: the array store cannot be read ({exc})") from exc


def _restore_numpy(directory: Path) -> Any:
    """An orbax store as numpy arrays, independent of the devices and processes that wrote it. The read is this
    process's alone (orbax would otherwise wait for every process of a multi-process run at its barriers)."""
    alone = ocp.options.MultiprocessingOptions(primary_host=mesh.process_index(),
                                               active_processes={mesh.process_index()})
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler(multiprocessing_options=alone),
                                    multiprocessing_options=alone)
    tree = checkpointer.metadata(directory).item_metadata.tree
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    restored = checkpointer.restore(directory, args=ocp.args.PyTreeRestore(restore_args=restore_args))
    return jax.tree.map(np.asarray, restored)


class StoredCheckpoint(Mapping):
    """A checkpoint directory, read lazily: ``["meta"]`` is its meta.json, ``["state"]`` the whole state (read on
    first use), :meth:`part` one part alone (e.g. ``"training"`` without the replay buffer)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).absolute()
        self._meta: dict[str, Any] | None = None
        self._state: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = json.loads((self.path / META_FILE).read_text())
        return self._meta

    def part(self, name: str) -> Any:
        if self._state is not None:
            return self._state[name]
        return load_checkpoint(self.path, [name])[0][name]

    def __getitem__(self, key: str) -> Any:
        if key == "meta":
            return self.meta
        if key == "state":
            if self._state is None:
                self._state, self._meta = load_checkpoint(self.path)
            return self._state
        raise KeyError(key)

    def __iter__(self):
        return iter(("state", "meta"))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"StoredCheckpoint({str(self.path)!r})"


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

    def save(self, step: int, state: Mapping[str, Any], meta: dict[str, Any]) -> Path:
        """Write ``step_<step>`` (collectively, in a multi-process run) and drop the oldest beyond ``keep``."""
        path = self.path(step)
        try:
            save_checkpoint(path, state, {**meta, "env_steps": step})
        except Exception as exc:
            cause = write_failure_cause(exc, self.directory)
            if cause is None:
                raise
            raise CheckpointWriteError(self.directory, cause, [self.path(s) for s in self.steps()]) from exc
        if mesh.is_primary():
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
        if mesh.is_primary():
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


def find_resumable(checkpoint_dir: str | os.PathLike, skip: frozenset[Path] = frozenset(),
                   accept: Callable[[Path, dict[str, Any]], bool] | None = None) -> Resumable | None:
    """The newest verified checkpoint of the newest interrupted run (one without ``COMPLETE``) under
    ``checkpoint_dir``; corrupt or incomplete checkpoints (and those in ``skip``) are reported and passed over for
    the one before them. ``accept`` (path, meta) may pass over a whole run (one of another config) for the next
    older interrupted run."""
    base = Path(checkpoint_dir)
    if not base.is_dir():
        return None
    runs = sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    for run_dir in runs:
        manager = CheckpointManager(run_dir, keep=1)
        if manager.complete:
            continue
        passed_over = False
        for step in reversed(manager.steps()):
            path = manager.path(step)
            if path in skip:
                continue
            try:
                meta = verify_checkpoint(path)
            except CorruptCheckpointError as exc:
                logger.warning("skipping a damaged checkpoint: %s", exc)
                continue
            if accept is None or accept(path, meta):
                return Resumable(run_dir, path, meta)
            passed_over = True
            break
        if not passed_over:
            return None  # the newest interrupted run has nothing usable: start fresh rather than go further back
    return None
