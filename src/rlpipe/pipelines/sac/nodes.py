"""SAC's own node: the prefill of its replay buffer (the other stages are shared). Multi-agent SAC (the masac
pipeline) uses it too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rlpipe.rl import run
from rlpipe.rl.training_run import ResumePoint


def prefill_buffer(config: Any, scenarios_train: pd.DataFrame, agent_store: Any, lineage: dict[str, Any],
                   resume: ResumePoint = ResumePoint()) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios; none when resuming (the checkpoint holds the
    buffer); with ``train.init_from_buffer`` the parent agent's replay buffer (``lineage`` names it) instead."""
    return run.initial_device_data(config, scenarios_train, agent_store, lineage, resume)
