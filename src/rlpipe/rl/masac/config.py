"""Multi-agent SAC's config: SAC's buffer and training sections, a network section with the critic's form, and the
rules that need a multi-agent environment."""

from __future__ import annotations

from typing import Literal

from rlpipe.rl import config as shared
from rlpipe.rl.config import redefault, spec
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.sac import config as sac


class AttentionConfig(shared.Config):
    """The attention block the critics share over the other agents (MAAC)."""

    embed_dim: int = spec(32, ge=1, le=4096, doc="width of the agents' encodings and of the attention output")
    heads: int = spec(2, ge=1, le=64, doc="attention heads (must divide embed_dim)")


class MASACNetworkConfig(shared.NetworkConfig):
    """A shared actor (own observation + one-hot agent id) and twin per-agent critics."""

    hidden_sizes: shared.HiddenSizes = redefault(shared.NetworkConfig, "hidden_sizes", (64, 64))
    critic_form: Literal["attention", "independent"] = spec(
        "attention", doc="attention: each agent's critic attends over the other agents' encoded observations and "
                         "actions (MAAC); independent: each critic sees only its own agent (independent learners)")
    attention: AttentionConfig = spec(default_factory=AttentionConfig, doc="the critics' attention block")


class MASACTrainConfig(sac.SACTrainConfig):
    """SAC's training loop, with multi-agent defaults."""

    total_env_steps: int = redefault(sac.SACTrainConfig, "total_env_steps", 150_000,
                                     doc="env steps in all (joint steps of every agent), prefill included")
    num_envs: int = redefault(sac.SACTrainConfig, "num_envs", 16)
    batch_size: int = redefault(sac.SACTrainConfig, "batch_size", 128)
    grad_updates_per_iter: int = redefault(sac.SACTrainConfig, "grad_updates_per_iter", 4)
    learning_rate: float = redefault(sac.SACTrainConfig, "learning_rate", 3e-4)
    gamma: float = redefault(sac.SACTrainConfig, "gamma", 0.95)
    init_temperature: float = redefault(sac.SACTrainConfig, "init_temperature", 0.1)
    target_entropy: float | None = redefault(
        sac.SACTrainConfig, "target_entropy", None,
        doc="entropy target per agent; null means -(one agent's action dimensions), or with n discrete actions "
            "0.5 log(n)")
    log_every_env_steps: int = redefault(sac.SACTrainConfig, "log_every_env_steps", 10_000)
    eval_every_env_steps: int = redefault(sac.SACTrainConfig, "eval_every_env_steps", 25_000)
    checkpoint_every_env_steps: int = redefault(sac.SACTrainConfig, "checkpoint_every_env_steps", 50_000)
    checkpoint_dir: str = redefault(sac.SACTrainConfig, "checkpoint_dir", "data/06_models/masac_checkpoints")


def _default_env() -> shared.EnvConfig:
    return shared.EnvConfig(id="jaxmarl:MPE_simple_spread_v3", kwargs={"action_type": "Continuous"},
                            metrics=("occupied_landmarks", "collisions"))


class MASACConfig(shared.Config):
    """Multi-agent Soft Actor-Critic: the `masac` parameters."""

    seed: int = spec(0, ge=0, lt=2**31, doc="the one seed every RNG key is split from")
    env: shared.EnvConfig = spec(default_factory=_default_env, doc="the environment: a jaxmarl:<id>")
    scenarios: shared.ScenarioConfig = spec(default_factory=lambda: shared.ScenarioConfig(num_eval=32),
                                            doc="training and held-out evaluation scenarios")
    network: MASACNetworkConfig = spec(default_factory=MASACNetworkConfig, doc="shared actor and critics")
    buffer: sac.BufferConfig = spec(default_factory=lambda: sac.BufferConfig(capacity=200_000, prefill_steps=5_000),
                                    doc="the replay buffer of joint transitions")
    train: MASACTrainConfig = spec(default_factory=MASACTrainConfig, doc="the training loop")
    tracking: shared.TrackingConfig = spec(
        default_factory=lambda: shared.TrackingConfig(registered_model_name="rlpipe-masac"),
        doc="MLflow and TensorBoard")


def check(config: MASACConfig, key: str, num_devices: int | None) -> None:
    """SAC's rules, and: a JaxMARL env, attention heads that divide the width, no torsos by name."""
    net = config.network
    if not config.env.id.startswith("jaxmarl:"):
        raise ConfigError(f"{key}.env.id", f"{config.env.id!r}: the multi-agent pipeline takes JaxMARL envs, "
                                           "'jaxmarl:<id>' (e.g. jaxmarl:MPE_simple_spread_v3)")
    if net.attention.embed_dim % net.attention.heads:
        raise ConfigError(f"{key}.network.attention.heads", f"{net.attention.heads} does not divide embed_dim "
                                                            f"{net.attention.embed_dim}")
    for name in ("module", "actor", "critic"):
        if getattr(net, name) is not None:
            raise ConfigError(f"{key}.network.{name}", "networks by name are not supported by masac; set null")
    if config.env.observation_mask is not None:
        raise ConfigError(f"{key}.env.observation_mask", "not supported by masac; set null")
    sac.check(config, key, num_devices, multi_agent=True)
