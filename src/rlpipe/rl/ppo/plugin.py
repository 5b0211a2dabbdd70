"""The registered "ppo": the PPO family under one name, each config run by the variant it describes.

A config with an ``imitation`` section is PPO imitation (``rlpipe.rl.ppo.imitation``), one with
``network.recurrent`` recurrent PPO (``rlpipe.rl.ppo.recurrent``), any other feed-forward PPO
(``rlpipe.rl.ppo.algorithm``). They share the name, the config class and the policy bundle's "algorithm" (a stored
agent of any of them is a "ppo" agent, its bundle rebuilt by the variant its meta describes); this module only
chooses, the variants hold the code.
"""

from __future__ import annotations

from typing import Any

from rlpipe.rl.ppo.algorithm import FEED_FORWARD_PPO, PPOAlgorithm
from rlpipe.rl.ppo.config import PPOConfig
from rlpipe.rl.ppo.imitation import IMITATION_PPO
from rlpipe.rl.ppo.recurrent import RECURRENT_PPO


def variant(config: PPOConfig) -> PPOAlgorithm:
    """The variant that runs ``config``."""
    if config.imitation is not None:
        return IMITATION_PPO
    if config.network.recurrent is not None:
        return RECURRENT_PPO
    return FEED_FORWARD_PPO


def variant_of_meta(meta: dict[str, Any]) -> PPOAlgorithm:
    """The variant that rebuilds a policy bundle's policy (imitation's is feed-forward PPO's)."""
    return RECURRENT_PPO if meta.get("recurrent") else FEED_FORWARD_PPO


class PPOFamily(PPOAlgorithm):
    """Every hook that depends on the config (or on a bundle's meta) goes to the variant it describes; the others
    are common to the family (PPO's)."""

    def metrics_of(self, config: PPOConfig) -> tuple[str, ...]:
        return variant(config).metrics_of(config)

    def network(self, config: PPOConfig, spec: Any) -> Any:
        return variant(config).network(config, spec)

    def fresh_training_state(self, config: PPOConfig, spec: Any, key: Any) -> Any:
        return variant(config).fresh_training_state(config, spec, key)

    def init_training_state(self, config: PPOConfig, spec: Any, key: Any) -> Any:
        return variant(config).init_training_state(config, spec, key)

    def init_device_state(self, config: PPOConfig, spec: Any, scenarios: Any, key: Any, num_devices: int,
                          device_data: Any) -> Any:
        return variant(config).init_device_state(config, spec, scenarios, key, num_devices, device_data)

    def make_iteration(self, config: PPOConfig, spec: Any, num_devices: int):
        return variant(config).make_iteration(config, spec, num_devices)

    def policy_meta(self, config: PPOConfig, spec: Any) -> dict[str, Any]:
        return variant(config).policy_meta(config, spec)

    def make_policy(self, meta: dict[str, Any]):
        return variant_of_meta(meta).make_policy(meta)


PPO = PPOFamily()
