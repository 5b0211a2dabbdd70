"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """``sac`` (also the default), and every other pipeline under ``rlpipe.pipelines``."""
    pipelines = find_pipelines(raise_errors=True)
    if "sac" in pipelines:  # only the requested pipelines are loaded: with --pipeline=ppo, sac is absent
        pipelines["__default__"] = pipelines["sac"]
    return pipelines
