"""SAC's own node: the random-action prefill of its replay buffer (the other stages are shared). Multi-agent SAC
(the masac pipeline) uses it too."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh
from rlpipe.rl.envs import env_spec, scenarios_to_batch
from rlpipe.rl.sac.algorithm import no_prefill, stored_transitions
from rlpipe.rl.seeds import num_seeds, stack_seeds
from rlpipe.stages.common import initial_device_data, parent_part
from rlpipe.stages.monitoring import will_resume

logger = logging.getLogger(__name__)


def prefill_buffer(config: Any, scenarios_train: pd.DataFrame, agent_store: Any,
                   lineage: dict[str, Any]) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios; none when resuming (the checkpoint holds the
    buffer); with ``train.init_from_buffer`` the parent agent's replay buffer (``lineage`` names it) instead."""
    spec = env_spec(config.env)
    algorithm = algorithms.for_config(config)
    name = algorithm.name
    if will_resume(config):
        logger.info(f"{name}.prefill_buffer: resuming an interrupted run, whose buffer is in its checkpoint: no prefill")
        return no_prefill(spec) if num_seeds(config) == 1 else stack_seeds([no_prefill(spec)] * num_seeds(config))
    if config.train.init_from_buffer:
        parent, version = agent_store.open(lineage["parent_version"], f"{name}.train.init_from")
        transitions = stored_transitions(parent_part(parent, "device")["buffer"], int(parent["meta"]["num_devices"]),
                                         config.buffer.capacity, mesh.device_count())
        logger.info(f"{name}.prefill_buffer: %d transitions from the replay buffer of stored agent %s instead of random "
                    "ones", len(transitions["reward"]), version)
        return transitions
    # every seed's own buffer, filled as a one-seed run with that seed fills it (a leading seed axis for several)
    return initial_device_data(algorithm, config, spec, scenarios_to_batch(scenarios_train, spec,
                                                                           f"{name}.scenarios_train"))
