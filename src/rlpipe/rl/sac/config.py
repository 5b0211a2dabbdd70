"""SAC's config: its own sections (replay buffer, training) on the shared ones, and its cross-field rules."""

from __future__ import annotations

import os
from typing import Literal

from rlpipe.rl import config as shared
from rlpipe.rl.config import redefault, spec
from rlpipe.rl.errors import ConfigError


class BufferConfig(shared.Config):
    """The replay buffer."""

    capacity: int = spec(100_000, ge=1, le=2**31 - 1, doc="replay buffer transitions, over all devices")
    prefill_steps: int = spec(1_000, ge=1, doc="env steps of uniformly random actions before training")


class SACNetworkConfig(shared.NetworkConfig):
    """Actor and critics: the shared shape, and how their MLP layers start."""

    init: Literal["lecun_normal", "torch_uniform"] = spec(
        "lecun_normal", doc="initial weights of the MLP layers: lecun_normal (flax's default: kernels N(0, 1/fan_in), "
        "biases 0) or torch_uniform (PyTorch nn.Linear's default, as Stable-Baselines3's networks start: kernels and "
        "biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)))")


class SACTrainConfig(shared.LoopConfig):
    """SAC's training loop."""

    total_env_steps: int = redefault(shared.LoopConfig, "total_env_steps", 12_000,
                                     doc="env steps in all, prefill included")
    checkpoint_dir: str = redefault(shared.LoopConfig, "checkpoint_dir", "data/06_models/sac_checkpoints")
    eval_every_env_steps: int = redefault(shared.LoopConfig, "eval_every_env_steps", 1_000)
    unroll_length: int = spec(1, ge=1, le=2**20, doc="env steps per environment per iteration")
    batch_size: int = spec(128, ge=1, le=2**24, doc="transitions per gradient step over all devices")
    grad_updates_per_iter: int = spec(8, ge=1, le=2**20, doc="gradient steps per iteration")
    learning_rate: float = spec(1e-3, gt=0.0, doc="Adam learning rate of actor, critics and temperature")
    gamma: float = spec(0.99, gt=0.0, le=1.0, doc="discount factor")
    tau: float = spec(0.005, gt=0.0, le=1.0, doc="Polyak rate of the target critics")
    init_temperature: float = spec(1.0, gt=0.0, doc="initial entropy temperature alpha")
    target_entropy: float | None = spec(None, doc="entropy target; null means -action_dim")
    init_from_buffer: bool = spec(False, doc="also take the stored agent's replay buffer contents (needs "
                                             "train.init_from)")


class SACConfig(shared.Config):
    """Soft Actor-Critic: the `sac` parameters."""

    seed: int = spec(0, ge=0, lt=2**31, doc="the one seed every RNG key is split from")
    env: shared.EnvConfig = spec(default_factory=shared.EnvConfig, doc="the environment")
    scenarios: shared.ScenarioConfig = spec(default_factory=shared.ScenarioConfig,
                                            doc="training and held-out evaluation scenarios")
    network: SACNetworkConfig = spec(default_factory=SACNetworkConfig, doc="actor and critic networks")
    buffer: BufferConfig = spec(default_factory=BufferConfig, doc="the replay buffer")
    train: SACTrainConfig = spec(default_factory=SACTrainConfig, doc="the training loop")
    tracking: shared.TrackingConfig = spec(
        default_factory=lambda: shared.TrackingConfig(registered_model_name="rlpipe-sac"), doc="MLflow and TensorBoard")


def check(config: SACConfig, key: str, num_devices: int | None, multi_agent: bool = False) -> None:
    """SAC's rules on top of the typed fields, for ``num_devices`` devices over all processes (None: only the rules
    that need neither the environment nor the device count); ``multi_agent``: masac's (see ``check_common``)."""
    t, b = config.train, config.buffer
    env_spec = shared.check_common(config, key, num_devices, continuous=True,
                                   steps_per_iter=t.num_envs * t.unroll_length, multi_agent=multi_agent)
    if t.batch_size > b.capacity:
        raise ConfigError(f"{key}.train.batch_size", f"{t.batch_size} is larger than {key}.buffer.capacity "
                                                     f"({b.capacity}): a batch must fit in the buffer")
    if b.prefill_steps > b.capacity:
        raise ConfigError(f"{key}.buffer.prefill_steps", f"{b.prefill_steps} is larger than {key}.buffer.capacity "
                                                         f"({b.capacity})")
    if b.prefill_steps < t.num_envs:
        raise ConfigError(f"{key}.buffer.prefill_steps", f"{b.prefill_steps} is smaller than {key}.train.num_envs "
                                                         f"({t.num_envs}): every environment needs a prefill step")
    if t.total_env_steps <= b.prefill_steps:
        raise ConfigError(f"{key}.train.total_env_steps",
                          f"{t.total_env_steps} leaves no training after {key}.buffer.prefill_steps "
                          f"({b.prefill_steps}) random steps; it counts prefill steps too")
    if num_devices is None:
        return
    obs_in = shared.agent_obs_dim(config, key, env_spec)
    shared.check_networks(config, key, {"actor": obs_in, "critic": obs_in + env_spec.action_dim})
    for name, value in (("train.batch_size", t.batch_size), ("buffer.capacity", b.capacity)):
        shared.check_divisible(value, f"{key}.{name}", num_devices)
    buffer_bytes = b.capacity * 4 * (2 * env_spec.obs_dim + env_spec.action_dim + 2)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if buffer_bytes > 0.5 * memory:
        raise ConfigError(f"{key}.buffer.capacity", f"{b.capacity} transitions need {buffer_bytes / 2**30:.1f} GiB, "
                                                    f"more than half of this machine's {memory / 2**30:.1f} GiB")
