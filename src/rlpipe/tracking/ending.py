"""A run that fails ends FAILED and one that is stopped ends KILLED, never RUNNING for ever or FINISHED.

kedro-mlflow ends a run FAILED when a node raises (Kedro's ``on_pipeline_error``), but a stopped process calls
no hook: SIGTERM (a scheduler's stop, ``kill``) ends the process with the run left RUNNING, and Ctrl-C (SIGINT)
unwinds past Kedro's hooks to mlflow's exit handler, which ends the run FINISHED. So while a pipeline runs, the main
thread's SIGTERM and SIGINT handlers end the open MLflow runs KILLED first, then do what the signal did before
(SIGTERM's default still ends the process at once; SIGINT still raises ``KeyboardInterrupt``). A run resumed later
is a new MLflow run that names this one (``rlpipe.resumed_from_run``, see ``conventions``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def end_open_runs(status: str) -> None:
    """End every MLflow run open in this process with ``status`` ("KILLED", "FAILED")."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    while mlflow.active_run() is not None:
        run_id = mlflow.active_run().info.run_id
        mlflow.end_run(status)
        logger.info("MLflow run %s ended %s", run_id, status)


class MlflowRunEndHooks:
    """Installs the stop handlers for the length of a pipeline run and ends a failed run FAILED."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @hook_impl(trylast=True)  # after kedro-mlflow's, which starts the run
    def before_pipeline_run(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set signal handlers (a run started from a thread keeps Python's)
        for number in SIGNALS:
            current = signal.getsignal(number)
            if current in (signal.SIG_IGN, None) or number in self._previous:
                continue  # an ignored signal stays ignored; a handler set by another than Python is left alone
            self._previous[number] = current
            signal.signal(number, self._stopped)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._restore()

    @hook_impl(trylast=True)  # after kedro-mlflow's, which ends its runs FAILED: whatever it left open
    def on_pipeline_error(self) -> None:
        self._restore()
        try:
            end_open_runs("FAILED")
        except Exception as error:
            logger.warning("could not end the failed MLflow run: %s", error)

    def _stopped(self, number: int, frame: Any) -> None:
        previous = self._previous.get(number, signal.SIG_DFL)
        self._restore()
        try:
            end_open_runs("KILLED")
        except Exception as error:  # the process stops all the same
            logger.warning("could not end the MLflow run as KILLED: %s", error)
        if callable(previous):
            previous(number, frame)  # e.g. Python's SIGINT handler: KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            os.kill(os.getpid(), number)  # the default action (handlers restored above): SIGTERM ends the process

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous, self._previous = self._previous, {}
        for number, handler in previous.items():
            signal.signal(number, handler)
