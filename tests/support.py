"""Building blocks the tests share: a validated config with its env and scenario batches, and a training run
through the library (no Kedro)."""

from __future__ import annotations

import jax

from rlpipe.rl import algorithm, training
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.keys import stage_key


def setup(algo: str, raw: dict, num_devices: int | None = None):
    """(algorithm, config, spec, train batch, eval batch) for ``raw`` validated for ``num_devices`` devices."""
    plugin = algorithm.get(algo)
    cfg = algorithm.load_config(algo, raw, num_devices or jax.device_count())
    spec = make_env(cfg.env.id)
    s = cfg.scenarios
    train_table, eval_table = generate_scenarios(spec, s.ranges, s.num_train, s.num_eval, cfg.seed)
    return plugin, cfg, spec, scenarios_to_batch(train_table, spec, "train"), scenarios_to_batch(eval_table, spec,
                                                                                                  "eval")


def device_data(algo: str, cfg, spec, train_batch):
    """What the train stage gets beside the initial state: SAC's prefill transitions, nothing for PPO."""
    if algo != "sac":
        return None
    from rlpipe.rl.sac.algorithm import collect_random

    return collect_random(cfg, spec, train_batch, stage_key(cfg.seed, "prefill"))


def train(algo: str, raw: dict, *, evaluate: bool = True, **kwargs):
    """A whole training run as the pipeline does it: ``(TrainResult, config)``."""
    plugin, cfg, spec, train_batch, eval_batch = setup(algo, raw)
    state = plugin.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    result = training.train(plugin, cfg, spec, train_batch, state, stage_key(cfg.seed, "train"),
                            device_data=device_data(algo, cfg, spec, train_batch),
                            eval_scenarios=eval_batch if evaluate else None, **kwargs)
    return result, cfg
