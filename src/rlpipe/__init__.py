"""rlpipe: reinforcement-learning agents trained in JAX, as Kedro pipelines or from Python.

From Python (no Kedro session): ``rlpipe.train(config) -> Result``, ``rlpipe.load_agent(path)``,
``rlpipe.evaluate(agent)`` (see ``rlpipe.api`` and docs/python-api.md). They load on first use, so ``import rlpipe``
(and Kedro's project start-up) stays light: no JAX until a run needs it.
"""

import os as _os

__version__ = "0.1"

# XLA's CPU compiler, by default, copies loop-carried arrays it cannot prove safe to update in place: in SAC's fused
# training loop that was 2 copies of 3 of the replay buffer's arrays at every iteration (2 x 168 MB for HalfCheetah
# at capacity 1M: 85 gradient steps/s instead of ~250). Its region analysis proves the in-place updates safe. XLA
# reads XLA_FLAGS when JAX first creates its CPU backend, which rlpipe never does at import: set here, before that.
# Another value of the flag in XLA_FLAGS is left alone.
_COPY_FLAG = "--xla_cpu_copy_insertion_use_region_analysis=true"
if "xla_cpu_copy_insertion_use_region_analysis" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} {_COPY_FLAG}".strip()

_API = ("train", "evaluate", "load_agent", "Result", "Agent", "Evaluation")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The public API (``rlpipe.api``), imported when first asked for."""
    if name in _API:
        from rlpipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlpipe' has no attribute {name!r}")
