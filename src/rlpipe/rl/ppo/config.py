"""PPO's config: its training section and early stopping on the shared sections, and its cross-field rules."""

from __future__ import annotations

from typing import Literal

from rlpipe.rl import config as shared
from rlpipe.rl.config import redefault, spec
from rlpipe.rl.errors import ConfigError


class PPOTrainConfig(shared.LoopConfig):
    """PPO's training loop."""

    # every train section had it until it became SAC's own: PPO agents stored before carry ``false``
    retired = {"init_from_buffer": False}

    total_env_steps: int = redefault(shared.LoopConfig, "total_env_steps", 100_000,
                                     doc="env step budget (early stopping may end sooner)")
    num_envs: int = redefault(shared.LoopConfig, "num_envs", 16)
    log_every_env_steps: int = redefault(shared.LoopConfig, "log_every_env_steps", 8_192)
    eval_every_env_steps: int = redefault(shared.LoopConfig, "eval_every_env_steps", 8_192)
    checkpoint_every_env_steps: int = redefault(shared.LoopConfig, "checkpoint_every_env_steps", 32_768)
    checkpoint_dir: str = redefault(shared.LoopConfig, "checkpoint_dir", "data/06_models/ppo_checkpoints")
    num_steps: int = spec(128, ge=1, le=2**20, doc="rollout length per environment per iteration")
    update_epochs: int = spec(4, ge=1, le=10**4, doc="passes over each rollout")
    num_minibatches: int = spec(4, ge=1, doc="minibatches per pass (per device share of the rollout)")
    learning_rate: float = spec(2.5e-3, gt=0.0, doc="Adam learning rate")
    anneal_lr: bool = spec(True, doc="decay the learning rate linearly to 0 over the budget")
    gamma: float = spec(0.99, gt=0.0, le=1.0, doc="discount factor")
    gae_lambda: float = spec(0.95, ge=0.0, le=1.0, doc="GAE lambda")
    clip_eps: float = spec(0.2, gt=0.0, doc="PPO ratio clipping")
    clip_value_loss: bool = spec(False, doc="clip the value update to clip_eps around the rollout's values")
    vf_coef: float = spec(0.5, ge=0.0, doc="value loss coefficient")
    ent_coef: float = spec(0.0, ge=0.0, doc="entropy bonus coefficient")
    max_grad_norm: float = spec(0.5, gt=0.0, doc="global gradient-norm clip")
    normalize_advantages: bool = spec(True, doc="standardize advantages per minibatch")
    normalize_observations: bool = spec(False, doc="running mean/std observation normalization")
    init_log_std: float = spec(0.0, doc="initial log std of the Gaussian policy (continuous actions)")


class RecurrentConfig(shared.Config):
    """A recurrent policy: an LSTM or GRU cell between the observation and the actor and critic heads."""

    cell: Literal["lstm", "gru"] = spec("lstm", doc="the recurrent cell")
    hidden_size: int = spec(64, ge=1, le=2**14, doc="the cell's width (also the observation embedding's)")


class PPONetworkConfig(shared.NetworkConfig):
    """PPO's networks: actor and critic (MLPs or torsos by name), optionally behind a shared recurrent cell."""

    activation: shared.Activation = redefault(shared.NetworkConfig, "activation", "tanh")
    recurrent: RecurrentConfig | None = spec(None, doc="a recurrent policy (memory for partially observable "
                                                       "tasks): {cell: lstm | gru, hidden_size}; null: feed-forward")


class DiscriminatorConfig(shared.Config):
    """The adversarial-imitation discriminator on (observation, next observation) pairs."""

    hidden_sizes: shared.HiddenSizes = spec((128, 128), doc="its MLP's layer widths (ReLU)")
    learning_rate: float = spec(3e-4, gt=0.0, le=1.0, doc="Adam learning rate")
    gradient_penalty: float = spec(5.0, ge=0.0, le=1e6, doc="weight of the penalty on its gradient at the "
                                                            "demonstrations (AMP's w_gp)")
    epochs: int = spec(1, ge=1, le=100, doc="passes over each rollout per iteration (num_minibatches steps each, "
                                            "every agent batch against as many demonstration pairs)")


class ImitationConfig(shared.Config):
    """Adversarial imitation (AMP-style): a style reward from a discriminator trained on demonstrations."""

    demonstrations: str = spec("latest", doc="the demonstrations version to imitate (a version of the "
                                             "demonstrations entry, or latest: the one Kedro loads)")
    style_weight: float = spec(1.0, ge=0.0, le=1e6, doc="weight of the style reward")
    task_weight: float = spec(0.0, ge=0.0, le=1e6, doc="weight of the env's own reward (0: the agent never sees it)")
    discriminator: DiscriminatorConfig = spec(default_factory=DiscriminatorConfig, doc="the discriminator")


class PPOConfig(shared.Config):
    """Proximal Policy Optimization: the `ppo` parameters."""

    seed: int = spec(0, ge=0, lt=2**31, doc="the one seed every RNG key is split from")
    env: shared.EnvConfig = shared.env_config("CartPole-v1")
    scenarios: shared.ScenarioConfig = spec(default_factory=shared.ScenarioConfig,
                                            doc="training and held-out evaluation scenarios")
    network: PPONetworkConfig = spec(default_factory=PPONetworkConfig, doc="policy and value networks")
    train: PPOTrainConfig = spec(default_factory=PPOTrainConfig, doc="the training loop")
    early_stopping: shared.EarlyStoppingConfig = spec(default_factory=shared.EarlyStoppingConfig,
                                                      doc="stopping before the budget is spent")
    tracking: shared.TrackingConfig = spec(
        default_factory=lambda: shared.TrackingConfig(registered_model_name="rlpipe-ppo"), doc="MLflow and TensorBoard")
    imitation: ImitationConfig | None = spec(None, doc="adversarial imitation of recorded demonstrations "
                                                       "(the ppo_imitation pipeline); null: the task reward alone")


def check(config: PPOConfig, key: str, num_devices: int | None) -> None:
    """PPO's rules on top of the typed fields, for ``num_devices`` devices over all processes (None: only the rules
    that need neither the environment nor the device count)."""
    t, e = config.train, config.early_stopping
    env = shared.check_common(config, key, num_devices, continuous=None, steps_per_iter=t.num_envs * t.num_steps)
    if e.target_return is not None and e.monitor == "eval" and not t.eval_every_env_steps:
        raise ConfigError(f"{key}.early_stopping.monitor", f"'eval' needs evaluations during training, but "
                                                           f"{key}.train.eval_every_env_steps is 0")
    imitation = config.imitation
    if imitation is not None:
        if imitation.style_weight == 0 and imitation.task_weight == 0:
            raise ConfigError(f"{key}.imitation.style_weight", "0 with task_weight 0 leaves no reward to learn from")
        if config.network.recurrent is not None:
            raise ConfigError(f"{key}.imitation", "adversarial imitation is for feed-forward policies; set "
                                                  f"{key}.network.recurrent: null")
    if num_devices is None:
        return
    recurrent = config.network.recurrent
    head_input = shared.agent_obs_dim(config, key, env) if recurrent is None else recurrent.hidden_size
    shared.check_networks(config, key, {"actor": head_input, "critic": head_input})
    if config.network.recurrent is not None:
        envs_per_device = t.num_envs // num_devices
        if envs_per_device % t.num_minibatches:
            raise ConfigError(f"{key}.train.num_minibatches",
                              f"{t.num_minibatches} does not divide a device's {envs_per_device} envs (num_envs / "
                              "devices): a recurrent policy's minibatches are whole env sequences")
        return
    per_device = t.num_envs // num_devices * t.num_steps
    if per_device % t.num_minibatches:
        raise ConfigError(f"{key}.train.num_minibatches",
                          f"{t.num_minibatches} does not divide a device's rollout of {per_device} transitions "
                          f"(num_envs / devices x num_steps)")
