"""Typed run configuration and its validation.

A raw mapping (what Kedro hands over as ``params:sac``) becomes a frozen dataclass tree. Every problem is
reported as a :class:`ConfigError` naming the dotted key, the offending value and what is allowed, before
any expensive work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlpipe.rl.errors import ConfigError

__all__ = ["ConfigError", "parse", "spec", "to_dict"]


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


def env_config(default_id: str):
    """An ``env`` section default for an algorithm whose usual environment is ``default_id``."""
    return spec(default_factory=lambda: EnvConfig(id=default_id))


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
class DistributedConfig:
    """How this process joins the others of a multi-process run (the top-level ``distributed`` parameters)."""

    coordinator_address: str | None = spec(None, doc="host:port of process 0's coordinator; null: "
                                                     "JAX_COORDINATOR_ADDRESS, or the cluster's (SLURM, Open MPI)")
    num_processes: int | None = spec(None, ge=1, doc="processes in the run; null: JAX_NUM_PROCESSES or the cluster's")
    process_id: int | None = spec(None, ge=0, doc="this process's index; null: JAX_PROCESS_ID, JOB_COMPLETION_INDEX "
                                                  "or the cluster's")
    initialization_timeout_seconds: int = spec(120, ge=1, doc="how long to wait for every process to join")
    heartbeat_timeout_seconds: int = spec(15, ge=2, doc="a process silent this long is lost: the others stop with "
                                                        "an error naming it")
    shutdown_timeout_seconds: int = spec(300, ge=1, doc="how long a finished process waits for the others at exit")


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
        raise ConfigError(key, f"{value} must be divisible by the number of devices ({num_devices}, over all "
                               "processes): each device gets an equal share")


def check_tracking(tracking: TrackingConfig, scenarios: ScenarioConfig, key: str) -> None:
    if tracking.animation_scenario >= scenarios.num_eval:
        raise ConfigError(f"{key}.animation_scenario", f"{tracking.animation_scenario} is not a row of the "
                                                       f"{scenarios.num_eval} eval scenarios (0 .. {scenarios.num_eval - 1})")
    if tracking.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(f"{key}.tensorboard", "true needs the tensorboardX package: "
                                                    "pip install -e '.[tensorboard]'")


def check_common(config: Any, key: str, num_devices: int, continuous: bool | None, steps_per_iter: int):
    """Rules every algorithm's config obeys (``num_devices``: all devices of all processes); returns the
    environment's EnvSpec."""
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
