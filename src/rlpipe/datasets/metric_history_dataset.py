"""MLflow metric histories, logged in batches."""

from __future__ import annotations

import time
from itertools import chain
from typing import Any

from kedro.io.core import DatasetError
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset


class MetricHistoryDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's ``MlflowMetricsHistoryDataset`` (the same data, names and steps), written with MLflow's
    ``log_batch``, 1,000 points a call (MLflow's limit), instead of one ``log_metric`` call (and one store
    transaction) per point: a training history at full resolution has thousands of points, which took seconds."""

    BATCH = 1000

    def _save(self, data: dict[str, Any]) -> None:
        if not self._logging_activated:
            return
        try:
            run_id = self.run_id
        except DatasetError:  # no run to log to: the parent's behaviour (mlflow starts one)
            super()._save(data)
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(key, float(value), now, int(step)) for key, value, step in
                  chain.from_iterable(self._build_args_list_from_metric_item(k, v) for k, v in data.items())]
        client = MlflowClient()
        for start in range(0, len(points), self.BATCH):
            client.log_batch(run_id, metrics=points[start:start + self.BATCH])
