"""Typed run configuration and its validation.

A raw mapping (what Kedro hands over as ``params:sac``) becomes a frozen dataclass tree. Every problem is
reported as a :class:`ConfigError` naming the dotted key, the offending value and what is allowed, before
any expensive work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def spec(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, choices=None,
         doc: str = "", default_factory: Any = dataclasses.MISSING):
    """A dataclass field carrying its validation rules (bounds, allowed values) and a one-line doc."""
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class EnvConfig:
    id: str = spec("Pendulum-v1", doc="gymnax environment id, or 'package.module:ClassName' of a user env")


@dataclass(frozen=True)
class ScenarioConfig:
    num_train: int = spec(256, ge=1, le=10**7, doc="training scenarios (sampled at every episode reset)")
    num_eval: int = spec(64, ge=1, le=10**7, doc="held-out evaluation scenarios (each run once, deterministically)")
    ranges: dict[str, tuple[float, float]] = spec(
        default_factory=dict,
        doc="env parameter -> [low, high] drawn uniformly per scenario; parameters not named keep their defaults",
    )


@dataclass(frozen=True)
class NetworkConfig:
    hidden_sizes: tuple[int, ...] = spec((64, 64), doc="hidden layer widths of actor and critics")
    activation: str = spec("relu", choices=("relu", "tanh", "gelu", "silu"), doc="hidden activation")


@dataclass(frozen=True)
class BufferConfig:
    capacity: int = spec(100_000, ge=1, le=2**31 - 1, doc="replay buffer transitions, over all devices")
    prefill_steps: int = spec(1_000, ge=1, doc="env steps of uniformly random actions before training")


@dataclass(frozen=True)
class LoopConfig:
    """What every training loop has: budget, env count, and the cadence of logs, evaluations and checkpoints."""

    total_env_steps: int = spec(20_000, ge=1, le=2**53, doc="env steps in all")
    num_envs: int = spec(8, ge=1, le=2**20, doc="parallel environments over all devices")
    log_every_env_steps: int = spec(2_000, ge=1, doc="env steps between progress lines (one compiled call)")
    eval_every_env_steps: int = spec(5_000, ge=0, doc="env steps between evaluations on the eval scenarios; 0: none")
    checkpoint_every_env_steps: int = spec(10_000, ge=1, doc="env steps between periodic checkpoints")
    checkpoint_dir: str = spec("data/06_models/checkpoints", doc="where periodic checkpoints go, one folder a run")
    keep_checkpoints: int = spec(3, ge=1, doc="periodic checkpoints kept per run (newest)")
    resume: bool = spec(False, doc="continue the newest interrupted run from its newest intact checkpoint")


@dataclass(frozen=True)
class SACTrainConfig(LoopConfig):
    total_env_steps: int = spec(12_000, ge=1, le=2**53, doc="env steps in all, prefill included")
    checkpoint_dir: str = spec("data/06_models/sac_checkpoints", doc="where periodic checkpoints go, one folder a run")
    unroll_length: int = spec(1, ge=1, le=2**20, doc="env steps per environment per iteration")
    batch_size: int = spec(128, ge=1, le=2**24, doc="transitions per gradient step over all devices")
    grad_updates_per_iter: int = spec(8, ge=1, le=2**20, doc="gradient steps per iteration")
    learning_rate: float = spec(1e-3, gt=0.0, doc="Adam learning rate of actor, critics and temperature")
    gamma: float = spec(0.99, gt=0.0, le=1.0, doc="discount factor")
    tau: float = spec(0.005, gt=0.0, le=1.0, doc="Polyak rate of the target critics")
    init_temperature: float = spec(1.0, gt=0.0, doc="initial entropy temperature alpha")
    target_entropy: float | None = spec(None, doc="entropy target; null means -action_dim")


@dataclass(frozen=True)
class PPOTrainConfig(LoopConfig):
    total_env_steps: int = spec(100_000, ge=1, le=2**53, doc="env step budget (early stopping may end sooner)")
    num_envs: int = spec(16, ge=1, le=2**20, doc="parallel environments over all devices")
    log_every_env_steps: int = spec(8_192, ge=1, doc="env steps between progress lines (one compiled call)")
    eval_every_env_steps: int = spec(8_192, ge=0, doc="env steps between evaluations on the eval scenarios; 0: none")
    checkpoint_every_env_steps: int = spec(32_768, ge=1, doc="env steps between periodic checkpoints")
    checkpoint_dir: str = spec("data/06_models/ppo_checkpoints", doc="where periodic checkpoints go, one folder a run")
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


@dataclass(frozen=True)
class EarlyStoppingConfig:
    target_return: float | None = spec(475.0, doc="stop once the windowed return reaches this; null: never stop")
    monitor: str = spec("eval", choices=("eval", "train"), doc="held-out evaluations, or training episodes")
    window: int = spec(1, ge=1, doc="values averaged")
    patience: int = spec(1, ge=1, doc="consecutive checks at or above target before stopping")


@dataclass(frozen=True)
class TrackingConfig:
    registered_model_name: str | None = spec("rlpipe-sac", doc="MLflow registry name of the policy; null: log only")
    tensorboard: bool = spec(False, doc="also write TensorBoard scalars (needs the 'tensorboard' extra)")
    tensorboard_dir: str = spec("data/08_reporting/tensorboard", doc="TensorBoard logs, one folder a run")
    animation_scenario: int = spec(0, ge=0, doc="row of the eval scenarios whose episode is animated")


@dataclass(frozen=True)
class SACConfig:
    seed: int = spec(0, ge=0, lt=2**31, doc="the one seed every RNG key is split from")
    env: EnvConfig = spec(default_factory=EnvConfig)
    scenarios: ScenarioConfig = spec(default_factory=ScenarioConfig)
    network: NetworkConfig = spec(default_factory=NetworkConfig)
    buffer: BufferConfig = spec(default_factory=BufferConfig)
    train: SACTrainConfig = spec(default_factory=SACTrainConfig)
    tracking: TrackingConfig = spec(default_factory=TrackingConfig)


@dataclass(frozen=True)
class PPOConfig:
    seed: int = spec(0, ge=0, lt=2**31, doc="the one seed every RNG key is split from")
    env: EnvConfig = spec(default_factory=lambda: EnvConfig(id="CartPole-v1"))
    scenarios: ScenarioConfig = spec(default_factory=ScenarioConfig)
    network: NetworkConfig = spec(default_factory=lambda: NetworkConfig(activation="tanh"))
    train: PPOTrainConfig = spec(default_factory=PPOTrainConfig)
    early_stopping: EarlyStoppingConfig = spec(default_factory=EarlyStoppingConfig)
    tracking: TrackingConfig = spec(default_factory=lambda: TrackingConfig(registered_model_name="rlpipe-ppo"))


# ------------------------------------------------------------------------------------------ mapping -> typed
def parse(cls: type, data: Any, key: str):
    """Build dataclass ``cls`` from a mapping, checking every key, type and bound; ``key`` is the dotted prefix."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"expected a mapping of settings, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = str(unknown[0])
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{key}.{name}", f"unknown key{hint}; allowed keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{key}.{name}", f.metadata)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, rules: Mapping[str, Any]):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, key, rules)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_show(value)}")
        _check_bounds(value, key, rules)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {_show(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {value}")
        _check_bounds(value, key, rules)
        return value
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected a non-empty string, got {_show(value)}")
        choices = rules.get("choices")
        if choices and value not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_show(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise ConfigError(key, "expected a non-empty list")
            items = [_convert(args[0], v, f"{key}[{i}]", {"ge": 1, "le": 2**16}) for i, v in enumerate(value)]
        else:
            if len(value) != len(args):
                raise ConfigError(key, f"expected a list of {len(args)} values, got {len(value)}")
            items = [_convert(a, v, f"{key}[{i}]", {}) for i, (a, v) in enumerate(zip(args, value))]
        return tuple(items)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {_show(value)}")
        return {str(k): _convert(value_type, v, f"{key}.{k}", {}) for k, v in value.items()}
    raise TypeError(f"config type {hint!r} of {key} is not supported")  # a bug in this module, not user input


def _check_bounds(value: float, key: str, rules: Mapping[str, Any]) -> None:
    checks = (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
              ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<"))
    for name, ok, symbol in checks:
        bound = rules.get(name)
        if bound is not None and not ok(value, bound):
            raise ConfigError(key, f"{value!r} is out of range: must be {symbol} {bound}")


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def to_dict(config: Any) -> dict:
    """The plain nested-dict form of a config (JSON-ready: tuples become lists)."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


# ------------------------------------------------------------------------------------------ cross-field rules
def check_divisible(value: int, key: str, num_devices: int) -> None:
    if value % num_devices:
        raise ConfigError(key, f"{value} must be divisible by the number of local devices ({num_devices}): "
                               "each device gets an equal share")


def check_tracking(tracking: TrackingConfig, scenarios: ScenarioConfig, key: str) -> None:
    if tracking.animation_scenario >= scenarios.num_eval:
        raise ConfigError(f"{key}.animation_scenario", f"{tracking.animation_scenario} is not a row of the "
                                                       f"{scenarios.num_eval} eval scenarios (0 .. {scenarios.num_eval - 1})")
    if tracking.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(f"{key}.tensorboard", "true needs the tensorboardX package: "
                                                    "pip install -e '.[tensorboard]'")


def _check_common(config: Any, key: str, num_devices: int, continuous: bool | None, steps_per_iter: int):
    """Rules every algorithm's config obeys; returns the environment's EnvSpec."""
    from rlpipe.rl.envs import check_env_id, check_scenario_ranges  # envs import jax: keep config import light

    t = config.train
    env_spec = check_env_id(config.env.id, f"{key}.env.id", continuous=continuous)
    check_scenario_ranges(config.scenarios.ranges, env_spec, f"{key}.scenarios.ranges")
    check_tracking(config.tracking, config.scenarios, f"{key}.tracking")
    check_divisible(t.num_envs, f"{key}.train.num_envs", num_devices)
    if t.log_every_env_steps < steps_per_iter:
        raise ConfigError(f"{key}.train.log_every_env_steps",
                          f"{t.log_every_env_steps} is below one iteration ({steps_per_iter} env steps)")
    return env_spec


def load_sac_config(raw: Any, num_devices: int, key: str = "sac") -> SACConfig:
    """Validate ``params:sac`` into a :class:`SACConfig` for ``num_devices`` local devices."""
    config = parse(SACConfig, raw, key)
    t, b = config.train, config.buffer
    env_spec = _check_common(config, key, num_devices, continuous=True, steps_per_iter=t.num_envs * t.unroll_length)
    for name, value in (("train.batch_size", t.batch_size), ("buffer.capacity", b.capacity)):
        check_divisible(value, f"{key}.{name}", num_devices)
    buffer_bytes = b.capacity * 4 * (2 * env_spec.obs_dim + env_spec.action_dim + 2)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if buffer_bytes > 0.5 * memory:
        raise ConfigError(f"{key}.buffer.capacity", f"{b.capacity} transitions need {buffer_bytes / 2**30:.1f} GiB, "
                                                    f"more than half of this machine's {memory / 2**30:.1f} GiB")
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
    return config


def load_ppo_config(raw: Any, num_devices: int, key: str = "ppo") -> PPOConfig:
    """Validate ``params:ppo`` into a :class:`PPOConfig` for ``num_devices`` local devices."""
    config = parse(PPOConfig, raw, key)
    t, e = config.train, config.early_stopping
    _check_common(config, key, num_devices, continuous=None, steps_per_iter=t.num_envs * t.num_steps)
    per_device = t.num_envs // num_devices * t.num_steps
    if per_device % t.num_minibatches:
        raise ConfigError(f"{key}.train.num_minibatches",
                          f"{t.num_minibatches} does not divide a device's rollout of {per_device} transitions "
                          f"(num_envs / devices x num_steps)")
    if e.target_return is not None and e.monitor == "eval" and not t.eval_every_env_steps:
        raise ConfigError(f"{key}.early_stopping.monitor", f"'eval' needs evaluations during training, but "
                                                           f"{key}.train.eval_every_env_steps is 0")
    return config
