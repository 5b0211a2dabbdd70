"""The training history into the MLflow run while it trains, at each progress line, so a running job's curves
update in the MLflow UI (not only once ``train`` ends).

The training core knows nothing of MLflow: the Kedro layer hands it a progress callback. A hook opens a
``LiveHistory`` on the run for each train node (``begin``) and closes it after (``end``); the train node asks for
it with ``progress_callback()``. Each progress row carries the curve points its chunk recorded, so the points
logged here are exactly the rows the final ``training_history`` table has for those steps, under the names the
final batch (the ``<algo>.metrics`` dataset) uses; that batch then adds only what the run does not have yet (the
final evaluation, the history of a resumed run from before it resumed).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from rlpipe.reporting.metrics import metric_histories
from rlpipe.rl.loop import CURVE_POINTS
from rlpipe.rl.run import RUN_FOLDER
from rlpipe.rl.training_run import history_table

logger = logging.getLogger(__name__)

FOLDER_TAG = "rlpipe.checkpoint_run"  # the checkpoint run folder a run trains in (a resumed run continues one)
BATCH = 1000  # MLflow's limit of metrics per log_batch call
_ACTIVE: list[LiveHistory] = []  # the train node running now, if its run is tracked


class LiveHistory:
    """A progress callback that logs each progress row's history points into MLflow run ``run_id`` as
    ``<prefix>.train.*`` / ``<prefix>.eval.*`` (the names of ``rlpipe.reporting.metrics``), and tags the run
    with its checkpoint run folder. A failure to log is a warning, once; training goes on."""

    def __init__(self, run_id: str, prefix: str, client: Any):
        self.run_id, self.prefix, self.client = run_id, prefix, client
        self._folder: str | None = None
        self._failed = False

    def __call__(self, row: dict[str, Any]) -> None:
        if self._failed:
            return
        try:
            self._log(row)
        except Exception as error:  # the run's curves stop updating; the final batch still logs them
            self._failed = True
            logger.warning("could not log the training history to MLflow run %s while training: %s", self.run_id,
                           error)

    def _log(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        folder = row.get(RUN_FOLDER)
        if folder and folder != self._folder:
            self.client.set_tag(self.run_id, FOLDER_TAG, folder)
            self._folder = folder
        chunk = {k: v for k, v in row.items() if k not in (CURVE_POINTS, RUN_FOLDER, "total_env_steps")}
        table = history_table([chunk], row.get(CURVE_POINTS) or [])
        now = int(time.time() * 1000)
        points = [Metric(f"{self.prefix}.{name}", point["value"], now, point["step"])
                  for name, history in metric_histories(table, {}).items() for point in history]
        for start in range(0, len(points), BATCH):
            self.client.log_batch(self.run_id, metrics=points[start:start + BATCH])


def begin(run_id: str, prefix: str) -> None:
    """A train node of MLflow run ``run_id`` starts; its metrics are named ``<prefix>.*``."""
    import mlflow

    _ACTIVE[:] = [LiveHistory(run_id, prefix, mlflow.MlflowClient())]


def end() -> None:
    """The train node ended (done or failed)."""
    _ACTIVE.clear()


def progress_callback() -> Callable[[dict[str, Any]], None] | None:
    """The running train node's live logger, or None when its run is not tracked (no MLflow run, another
    process of a multi-process run, a run outside Kedro)."""
    return _ACTIVE[0] if _ACTIVE else None
