"""Where the Kedro project is: relative paths in a config are under its root, not under a notebook's cwd."""

from __future__ import annotations

from pathlib import Path

from kedro.utils import find_kedro_project

from rlpipe.rl.training_run import resolve


def project_root() -> Path:
    """The Kedro project's root (relative paths in config are under it, not under a notebook's cwd), else the cwd."""
    return find_kedro_project(Path.cwd()) or Path.cwd()


def project_path(path: str) -> Path:
    """A config path under the Kedro project root (absolute paths as given)."""
    return resolve(path, project_root())
