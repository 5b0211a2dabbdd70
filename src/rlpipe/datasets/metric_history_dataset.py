"""MLflow metric histories, logged in batches."""

from __future__ import annotations

import time
from typing import Any

from kedro.io.core import DatasetError
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

from rlpipe.compat import metric_logging_activated, metric_points, save_metric_history_as_kedro_mlflow


class MetricHistoryDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's ``MlflowMetricsHistoryDataset`` (the same data, names and steps), written with MLflow's
    ``log_batch``, 1,000 points a call (MLflow's limit), instead of one ``log_metric`` call (and one store
    transaction) per point: a training history at full resolution has thousands of points, which took seconds.
    A point whose metric the run already has at that step (the training history logged while it trained,
    ``rlpipe.tracking.live``) is not logged twice."""

    BATCH = 1000

    def _save(self, data: dict[str, Any]) -> None:
        if not metric_logging_activated(self):
            return
        try:
            run_id = self.run_id
        except DatasetError:  # no run to log to: the parent's behaviour (mlflow starts one)
            save_metric_history_as_kedro_mlflow(self, data)
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client = MlflowClient()
        logged: dict[str, set[int]] = {}  # the steps of each metric the run has already (logged while training)
        points = []
        for key, value, step in metric_points(self, data):
            if key not in logged:  # one query per metric, not per point
                logged[key] = _steps(client, run_id, key)
            if int(step) not in logged[key]:
                points.append(Metric(key, float(value), now, int(step)))
        for start in range(0, len(points), self.BATCH):
            client.log_batch(run_id, metrics=points[start:start + self.BATCH])


def _steps(client, run_id: str, key: str) -> set[int]:
    return {metric.step for metric in client.get_metric_history(run_id, key)}
