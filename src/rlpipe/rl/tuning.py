"""Hyperparameter search over an algorithm's config (Optuna), without Kedro.

A search space maps dotted config keys (``train.learning_rate``) to distributions. It is checked against the
algorithm's config before any trial: every key must exist, every distribution must be possible, and its extreme
values (low, high, every choice) must each give a valid config. A trial's objective is the interquartile mean, over
``num_seeds`` agents trained together in one program, of each agent's mean return on the held-out scenarios.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from rlpipe.rl import algorithm as algorithms
from typing import Annotated

from pydantic import BeforeValidator

from rlpipe.rl.config import Config, Kwargs, _as_dict, _as_tuple, parse, spec
from rlpipe.rl.errors import ConfigError


Choices = Annotated[tuple[Any, ...], BeforeValidator(_as_tuple)]


class Distribution(Config):
    """One key's distribution: ``float``/``log_float``/``int`` between ``low`` and ``high`` (``step`` for ints), or
    ``categorical`` over ``choices``."""

    type: Literal["float", "log_float", "int", "categorical"] = spec(doc="the kind of distribution")
    low: float | None = spec(None, doc="lower bound (float, log_float, int)")
    high: float | None = spec(None, doc="upper bound (float, log_float, int)")
    step: int = spec(1, ge=1, doc="int: spacing of the values")
    choices: Choices | None = spec(None, doc="categorical: the values (numbers, strings, booleans, lists)")


Space = Annotated[dict[str, Distribution], BeforeValidator(_as_dict)]


class SamplerConfig(Config):
    """Optuna's TPE sampler."""

    seed: int = spec(0, ge=0, lt=2**30, doc="seed of the TPE sampler (plus the worker index)")
    n_startup_trials: int = spec(5, ge=0, doc="random trials before TPE models the space")


class PrunerConfig(Config):
    """Optuna's median pruner: a trial stops when its periodic evaluation is below the median of earlier trials'
    at the same env step."""

    n_startup_trials: int = spec(5, ge=0, doc="trials completed before any is pruned")
    n_warmup_steps: int = spec(0, ge=0, doc="env steps of a trial before it may be pruned")


class TuneConfig(Config):
    """A search: its space, budget, sampler, pruner and storage (the ``<algo>_tune`` parameters)."""

    study_name: str = spec("rlpipe", doc="the study: workers with the same storage and name share it")
    storage: str | None = spec(None, doc="SQLAlchemy URL of the study storage without a secret (e.g. sqlite:///...); "
                                         "null: storage_credentials, or else a SQLite file "
                                         "data/09_tuning/<algo>_tune.db in the project")
    storage_credentials: str | None = spec(None, doc="the entry of the credentials (conf/local/credentials.yml) whose "
                                                     "`url` is the study storage's SQLAlchemy URL, e.g. "
                                                     "postgresql://user:password@host/db: a secret is never a "
                                                     "parameter (parameters are logged to MLflow)")
    direction: Literal["maximize", "minimize"] = spec("maximize", doc="of the objective (the eval return IQM)")
    n_trials: int = spec(24, ge=1, le=100_000, doc="trials of the study in all (over every worker)")
    num_seeds: int = spec(4, ge=1, le=1024, doc="agents trained together per trial; the objective is their IQM")
    timeout_s: float | None = spec(None, gt=0, doc="a worker starts no trial after this many seconds; null: none")
    worker: int = spec(0, ge=0, lt=2**20, doc="this worker's index: offsets the sampler's seed, so that workers "
                                              "started together do not draw the same trials")
    heartbeat_interval_s: int = spec(10, ge=1, doc="seconds between a running trial's heartbeats")
    grace_period_s: int = spec(60, ge=2, doc="a trial whose heartbeat is older than this is marked failed")
    sampler: SamplerConfig = spec(default_factory=SamplerConfig, doc="the TPE sampler")
    pruner: PrunerConfig = spec(default_factory=PrunerConfig, doc="the median pruner, fed by the periodic evaluations")
    base: Kwargs = spec(default_factory=dict, doc="overrides of the algorithm's parameters for every trial "
                                                          "(e.g. a smaller budget), nested as they are")
    space: Space = spec(default_factory=dict, doc="dotted config key -> distribution")


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) \
            else copy.deepcopy(value)
    return out


def nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.learning_rate": 1e-3}`` -> ``{"train": {"learning_rate": 1e-3}}``."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = list(value) if isinstance(value, tuple) else value
    return out


def trial_params(base_params: Mapping[str, Any], tune: TuneConfig, values: Mapping[str, Any]) -> dict[str, Any]:
    """The algorithm's parameters for one trial: its own, the search's ``base``, the trial's values, and the
    search's number of seeds."""
    params = _merge(_merge(base_params or {}, tune.base), nested(values))
    return _merge(params, {"train": {"num_seeds": tune.num_seeds}})


def _config_key(cls: type, dotted: str) -> bool:
    """Whether ``dotted`` names a leaf field of config class ``cls`` (through nested sections)."""
    current = cls
    for part in dotted.split("."):
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return False
        current = _section(fields[part].annotation)
    return True


def _section(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, Config):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, Config):
            return arg
    return None


def check_space(algo: str, base_params: Mapping[str, Any], tune: TuneConfig, num_devices: int | None,
                key: str) -> None:
    """Every key of the space is a key of ``algo``'s config, every distribution is possible, and each extreme
    value gives a valid config (``ConfigError`` naming ``<key>.space.<dotted>`` otherwise)."""
    config_class, _ = algorithms.config_of(algo)
    if not tune.space:
        raise ConfigError(f"{key}.space", "is empty: name at least one config key and its distribution")
    if "train.num_seeds" in tune.space or "seed" in tune.space:
        raise ConfigError(f"{key}.space", "seeds are not searched: set num_seeds in the search, seed in the base")
    for dotted, dist in tune.space.items():
        where = f"{key}.space.{dotted}"
        if not _config_key(config_class, dotted):
            raise ConfigError(where, f"{algo} has no config key {dotted!r}")
        if dist.type == "categorical":
            if not dist.choices:
                raise ConfigError(f"{where}.choices", "a categorical distribution needs at least one choice")
            extremes = list(dist.choices)
        else:
            if dist.low is None or dist.high is None or dist.choices is not None:
                raise ConfigError(where, f"a {dist.type} distribution needs low and high (and no choices)")
            if not dist.low < dist.high and not (dist.type == "int" and dist.low == dist.high):
                raise ConfigError(f"{where}.low", f"{dist.low} is not below high ({dist.high})")
            if dist.type == "log_float" and dist.low <= 0:
                raise ConfigError(f"{where}.low", f"{dist.low}: a log-uniform distribution needs low > 0")
            if dist.type == "int" and (dist.low != int(dist.low) or dist.high != int(dist.high)):
                raise ConfigError(where, f"an int distribution needs whole bounds, not {dist.low}..{dist.high}")
            extremes = [int(dist.low), int(dist.high)] if dist.type == "int" else [dist.low, dist.high]
        for value in extremes:
            try:
                algorithms.load_config(algo, trial_params(base_params, tune, {dotted: value}), num_devices,
                                       key=f"{key}.space[{dotted}={value!r}]")
            except ConfigError as error:
                raise ConfigError(where, f"the value {value!r} gives an invalid {algo} config: {error}") from None


def suggest(trial: Any, space: Mapping[str, Distribution]) -> dict[str, Any]:
    """The trial's values, key by key (categorical choices that are lists are offered as JSON strings, since
    Optuna's choices are scalars)."""
    values = {}
    for dotted, dist in space.items():
        if dist.type == "float":
            values[dotted] = trial.suggest_float(dotted, dist.low, dist.high)
        elif dist.type == "log_float":
            values[dotted] = trial.suggest_float(dotted, dist.low, dist.high, log=True)
        elif dist.type == "int":
            values[dotted] = trial.suggest_int(dotted, int(dist.low), int(dist.high), step=dist.step)
        else:
            encoded = [_encode(c) for c in dist.choices]
            values[dotted] = _decode(trial.suggest_categorical(dotted, encoded))
    return values


def _encode(choice: Any) -> Any:
    return json.dumps(list(choice)) if isinstance(choice, (list, tuple)) else choice


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def decoded(params: Mapping[str, Any]) -> dict[str, Any]:
    """A finished trial's params as config values (lists back from their JSON strings)."""
    return {k: _decode(v) for k, v in params.items()}


def space_fingerprint(tune: TuneConfig) -> str:
    """What a stored study must agree on with a new worker: direction and space."""
    space = {k: v.model_dump(mode="json") for k, v in sorted(tune.space.items())}
    return json.dumps({"direction": tune.direction, "space": space}, sort_keys=True)


def objective_value(per_seed_means) -> float:
    """The IQM of the agents' mean eval returns (for fewer than 4 agents, their mean)."""
    from rlpipe.rl.statistics import iqm

    return iqm([float(v) for v in per_seed_means])


def finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def load_tune_config(raw: Any, key: str) -> TuneConfig:
    """The search's config; a storage URL with a password in the parameters is a ``ConfigError`` (it belongs in
    the credentials, named by ``storage_credentials``), and so is a storage given both ways."""
    from urllib.parse import urlsplit

    tune = parse(TuneConfig, raw, key)
    if tune.storage and tune.storage_credentials:
        raise ConfigError(f"{key}.storage", "set either storage or storage_credentials, not both")
    try:
        password = urlsplit(tune.storage).password if tune.storage else None
    except ValueError:
        password = None
    if password:
        raise ConfigError(f"{key}.storage", "holds a password, and parameters are logged to MLflow: put the URL in "
                                            "conf/local/credentials.yml (an entry such as `study_db: {url: ...}`) "
                                            "and name the entry in storage_credentials")
    return tune
