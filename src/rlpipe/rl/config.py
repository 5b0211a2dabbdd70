"""Typed run configuration and its validation.

A raw mapping (what Kedro hands over as ``params:sac``) becomes a frozen tree of pydantic models (:class:`Config`).
Every problem is reported as a :class:`ConfigError` naming the dotted key, the offending value and what is allowed,
before any expensive work starts. The same models give each pipeline's parameters a JSON Schema
(``python -m rlpipe.schemas`` writes them to ``conf/schemas/``).

Validation is strict: a bool is not an integer or a number, a string is not a number, None is accepted only where
the type is Optional; an integer is accepted as a number (converted), a list as a tuple. A missing or null section
means that section's defaults (the ones its parent declares for it: PPO's ``tracking`` keeps ``rlpipe-ppo`` as its
registered model name when only other tracking keys are given).
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError, PydanticUndefined

from rlpipe.rl.errors import ConfigError

__all__ = ["Config", "ConfigError", "parse", "spec", "to_dict"]


class Config(BaseModel):
    """Base of every config section: frozen, strict, unknown keys are errors."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False, str_min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _plain_mapping(cls, data: Any) -> Any:
        """None means all defaults; any mapping is accepted (names as strings); a section given in part keeps the
        other values its parent declares as that section's default."""
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            return data  # an instance passes; anything else is reported as "expected a mapping of settings"
        data = {k if isinstance(k, str) else str(k): v for k, v in data.items()}
        for name, defaults in _section_defaults(cls).items():
            if name not in data:
                continue
            if data[name] is None:
                del data[name]  # the section's declared default
            elif defaults and isinstance(data[name], Mapping):
                given = {k if isinstance(k, str) else str(k): v for k, v in data[name].items()}
                data[name] = {**defaults, **given}
        return data


@functools.cache
def _section_defaults(cls: type[Config]) -> dict[str, dict[str, Any]]:
    """For each section field of ``cls``: the values in which its declared default differs from the section
    class's own defaults (e.g. PPO's ``tracking.registered_model_name``)."""
    out = {}
    for name, info in cls.model_fields.items():
        section = _strip(info.annotation)
        if not (isinstance(section, type) and issubclass(section, Config)):
            continue
        declared = info.get_default(call_default_factory=True)
        if not isinstance(declared, Config):  # an optional section (null by default) has no defaults to keep
            out[name] = {}
            continue
        plain = section()
        out[name] = {k: getattr(declared, k) for k in type(declared).model_fields
                     if getattr(declared, k) != getattr(plain, k)}
    return out


def spec(default: Any = PydanticUndefined, *, ge=None, gt=None, le=None, lt=None, choices=None, doc: str = "",
         default_factory: Any = None):
    """A config field with its validation rules (bounds, allowed values) and a one-line doc (the schema's
    description). Prefer a ``Literal[...]`` type to ``choices``: both are checked, the Literal is also typed."""
    if default_factory is not None:
        kwargs = {"default_factory": default_factory}
    else:
        kwargs = {"default": default}
    info = Field(**kwargs, ge=ge, gt=gt, le=le, lt=lt, description=doc or None,
                 json_schema_extra={"enum": list(choices)} if choices else None)
    if choices:
        allowed = tuple(choices)

        def one_of(value):
            if value not in allowed:
                raise PydanticCustomError("config_choice", "{value} is not one of {allowed}",
                                          {"value": value, "allowed": allowed})
            return value

        info.metadata.append(AfterValidator(one_of))
    return info


def redefault(base: type[BaseModel], name: str, default: Any, doc: str | None = None):
    """Field ``name`` of ``base`` with another default (and doc), its type rules and bounds kept: how a section
    subclass (e.g. an algorithm's ``LoopConfig``) changes what it starts from without restating the rules."""
    import copy

    info = copy.copy(base.model_fields[name])
    info.default = default
    if doc is not None:
        info.description = doc
    return info


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _as_dict(value: Any) -> Any:
    return {k if isinstance(k, str) else str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value


# list values are accepted for tuples, any mapping for dicts
HiddenSizes = Annotated[tuple[Annotated[int, Field(ge=1, le=2**16)], ...], Field(min_length=1),
                        BeforeValidator(_as_tuple)]
Interval = Annotated[tuple[float, float], BeforeValidator(_as_tuple)]
Ranges = Annotated[dict[str, Interval], BeforeValidator(_as_dict)]
Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Kwargs = Annotated[dict[str, Any], BeforeValidator(_as_dict)]
Activation = Literal["relu", "tanh", "gelu", "silu"]


def _module_path(value: Any) -> Any:
    if isinstance(value, str) and (value.count(":") != 1 or not all(value.split(":"))):
        raise PydanticCustomError("config_module", "expected 'package.module:ClassName'")
    return value


def _observation_mask(value: Any) -> Any:
    """A list of kept observation indices (as a tuple) or a variant name; anything else is reported here."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise PydanticCustomError("config_mask", "expected a non-empty list of observation indices")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise PydanticCustomError("config_mask", "expected a list of integer observation indices")
        if len(set(value)) != len(value):
            raise PydanticCustomError("config_mask", "expected distinct observation indices")
        return tuple(value)
    raise PydanticCustomError("config_mask", "expected a list of observation indices kept, or a variant name "
                                             "such as 'no_velocity'")


ModulePath = Annotated[str, AfterValidator(_module_path)]
# a list, or one string of names separated by spaces (``kedro run --params`` splits its value at commas)
RunNames = Annotated[tuple[str, ...], BeforeValidator(lambda v: tuple(v.split()) if isinstance(v, str) else _as_tuple(v))]
ObservationMask = Annotated[tuple[int, ...] | str | None, BeforeValidator(_observation_mask)]


# --------------------------------------------------------------------------------------------------- sections
class EnvConfig(Config):
    """The environment."""

    id: str = spec("Pendulum-v1", doc="gymnax environment id; 'gymnasium:<id>' (any registered Gymnasium env, "
                                      "stepped on the host); 'brax:<name>' (a Brax env, optional extra); or "
                                      "'package.module:ClassName' of a user JAX env")
    kwargs: Kwargs = spec(default_factory=dict,
                                  doc="keyword arguments of the env's constructor (gymnasium.make, a Brax env)")
    vector: Literal["sync", "async"] = spec("sync", doc="how a Gymnasium env's copies are stepped: in the training "
                                                        "process (sync) or in worker processes (async)")
    workers: int = spec(2, ge=1, le=1024, doc="worker processes per device for vector: async")
    metrics: Names = spec((), doc="step info values evaluation reports per scenario (mean over the "
                                            "episode and final value; booleans as rates), e.g. is_success")
    observation_mask: ObservationMask = spec(None, doc="the observation indices the agent sees (a partially "
                                                        "observable task), or a named variant: 'no_velocity' "
                                                        "(CartPole, Pendulum, MountainCar, Acrobot); null: all")


def env_config(default_id: str):
    """An ``env`` section default for an algorithm whose usual environment is ``default_id``."""
    return spec(default_factory=lambda: EnvConfig(id=default_id), doc="the environment")


class CurriculumConfig(Config):
    """A failure-weighted curriculum over the training scenarios."""

    every_env_steps: int = spec(20_000, ge=1, doc="env steps between re-weightings: the current deterministic "
                                                  "policy is evaluated on every training scenario")
    temperature: float = spec(1.0, gt=0.0, le=1e6, doc="softmax temperature, in standard deviations of the scores "
                                                       "over the training scenarios (lower: sharper)")
    floor: float = spec(0.1, ge=0.0, le=1.0, doc="share of the draws that stays uniform, so no scenario is starved")
    metric: str | None = spec(None, doc="a success metric named in env.metrics (its final value, 1 = success): "
                                        "scenarios are weighted by failure; null: by negative return")


class ScenarioConfig(Config):
    """Training and held-out evaluation scenarios: environment parameters drawn per scenario."""

    num_train: int = spec(256, ge=1, le=10**7, doc="training scenarios (sampled at every episode reset)")
    num_eval: int = spec(64, ge=1, le=10**7, doc="held-out evaluation scenarios (each run once, deterministically)")
    ranges: Ranges = spec(
        default_factory=dict,
        doc="env parameter -> [low, high] drawn uniformly per scenario; parameters not named keep their defaults",
    )
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of the scenario tables; null: the run's seed (every "
                                                         "seed of a multi-seed run shares the run's scenarios)")
    curriculum: CurriculumConfig | None = spec(None, doc="draw training scenarios by failure: {every_env_steps, "
                                                         "temperature, floor, metric}; null: uniformly")


class ModuleConfig(Config):
    """A flax module of the user's (or the project's) as the torso of one network."""

    module: ModulePath = spec(doc="'package.module:ClassName' of a flax.linen.Module: built with kwargs, called "
                                  "with a batch of inputs [batch, features], returns features [batch, width] (the "
                                  "algorithm adds the output layer)")
    kwargs: Kwargs = spec(default_factory=dict, doc="keyword arguments of the module's constructor")


class NetworkConfig(Config):
    """The networks' shape."""

    hidden_sizes: HiddenSizes = spec((64, 64), doc="hidden layer widths of actor and critics")
    activation: Activation = spec("relu", doc="hidden activation")
    module: ModulePath | None = spec(None, doc="'package.module:ClassName' of a flax module used as the torso of "
                                               "the actor and of every critic (in place of the hidden_sizes MLP), "
                                               "e.g. rlpipe.rl.networks:ResidualMLP; null: the MLP")
    kwargs: Kwargs = spec(default_factory=dict, doc="keyword arguments of network.module's constructor")
    actor: ModuleConfig | None = spec(None, doc="the actor's own torso module (overrides network.module for it)")
    critic: ModuleConfig | None = spec(None, doc="the critics' own torso module (overrides network.module for them)")

    def torso(self, role: str) -> dict[str, Any] | None:
        """``{"module", "kwargs"}`` of role ``actor`` or ``critic``'s torso; None: the hidden_sizes MLP."""
        own = getattr(self, role)
        if own is not None:
            return {"module": own.module, "kwargs": dict(own.kwargs)}
        if self.module is not None:
            return {"module": self.module, "kwargs": dict(self.kwargs)}
        return None


class LoopConfig(Config):
    """What every training loop has: budget, env count, and the cadence of logs, evaluations and checkpoints."""

    total_env_steps: int = spec(20_000, ge=1, le=2**53, doc="env steps in all")
    num_envs: int = spec(8, ge=1, le=2**20, doc="parallel environments over all devices")
    log_every_env_steps: int = spec(2_000, ge=1, doc="env steps between progress lines (one compiled call)")
    history_points_per_log: int = spec(50, ge=0, le=10**5,
                                       doc="training-history points recorded inside each compiled call (evenly "
                                           "spaced iterations, each point the mean of its share), carried out at "
                                           "its end: no extra host wake-ups; 0: one point per progress line")
    eval_every_env_steps: int = spec(5_000, ge=0, doc="env steps between evaluations on the eval scenarios; 0: none")
    checkpoint_every_env_steps: int = spec(10_000, ge=1, doc="env steps between periodic checkpoints")
    checkpoint_dir: str = spec("data/06_models/checkpoints", doc="where periodic checkpoints go, one folder a run")
    keep_checkpoints: int = spec(3, ge=1, doc="periodic checkpoints kept per run (newest)")
    resume: bool = spec(False, doc="continue the newest interrupted run from its newest intact checkpoint")
    init_from: str | None = spec(None, doc="version of this pipeline's stored agent (catalog version string of "
                                           "<algo>.agent, or 'latest') whose parameters the run starts from; "
                                           "null: fresh init")
    init_from_optimizer: bool = spec(False, doc="also take the stored agent's optimizer state")
    init_from_buffer: bool = spec(False, doc="also take its replay buffer contents (SAC)")
    num_seeds: int = spec(1, ge=1, le=1024, doc="independent agents trained together in one compiled program, "
                                                "seeds seed, seed+1, ...: each its own init, RNG streams and buffers; "
                                                "evaluated on the same scenarios and aggregated (IQM, 95% CI)")


class EarlyStoppingConfig(Config):
    """When training stops before its budget."""

    target_return: float | None = spec(475.0, doc="stop once the windowed return reaches this; null: never stop")
    monitor: Literal["eval", "train"] = spec("eval", doc="held-out evaluations, or training episodes")
    window: int = spec(1, ge=1, doc="values averaged")
    patience: int = spec(1, ge=1, doc="consecutive checks at or above target before stopping")


# ``register`` is also the name of a method of BaseModel's metaclass (abc.ABCMeta.register), which instances do not
# see: the field works, pydantic's warning about the name is moot.
warnings.filterwarnings("ignore", message='Field name "register" in "TrackingConfig" shadows', category=UserWarning)


class TrackingConfig(Config):
    """What goes to MLflow (and TensorBoard) besides the pipeline's datasets."""

    registered_model_name: str | None = spec("rlpipe-sac", doc="MLflow registry name of the policy; null: log only")
    tensorboard: bool = spec(False, doc="also write TensorBoard scalars (needs the 'tensorboard' extra)")
    tensorboard_dir: str = spec("data/08_reporting/tensorboard", doc="TensorBoard logs, one folder a run")
    animation_scenario: int = spec(0, ge=0, doc="row of the eval scenarios whose episode is animated")
    video_every_env_steps: int = spec(0, ge=0, doc="env steps between short videos of the current policy on the "
                                                   "animation scenario during training; 0: none")
    register: Literal["always", "on_target"] = spec("always", doc="register the policy model in the MLflow registry "
                                                                  "always, or only when the final evaluation's mean "
                                                                  "return reaches the target")
    target_return: float | None = spec(None, doc="the eval mean return that 'on_target' registration needs; null: "
                                                 "early_stopping.target_return where the algorithm has one")
    system_metrics: bool = spec(True, doc="log MLflow system metrics (CPU, memory; GPU when present) during the run")
    system_metrics_interval_s: float = spec(3.0, gt=0.0, le=3600.0,
                                            doc="seconds between system-metric samples (each is a probe and a "
                                                "write to the store beside the training)")


class DistributedConfig(Config):
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


class EvaluationConfig(Config):
    """How the evaluation pipelines evaluate a stored agent (the top-level ``evaluation`` parameters)."""

    scenarios: Literal["stored", "fresh"] = spec("stored", doc="the agent's own held-out eval scenarios (regenerated "
                                                               "exactly from its config), or fresh ones drawn with "
                                                               "evaluation.seed")
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of fresh scenarios; null: the agent's scenario seed + 1")
    num_scenarios: int | None = spec(None, ge=1, le=10**7, doc="number of fresh scenarios; null: the agent's "
                                                               "scenarios.num_eval")
    seed_index: int | None = spec(None, ge=0, le=1023, doc="of a multi-seed agent (train.num_seeds), the seed to "
                                                           "evaluate; null: the best one (the served policy)")
    animation: bool = spec(True, doc="render the animation scenario's episode (GIF, and MP4 when ffmpeg is on PATH)")
    animation_scenario: int = spec(0, ge=0, doc="row of the evaluated scenarios whose episode is animated")


class DemonstrationsConfig(Config):
    """What the recording pipelines record from a stored agent (the top-level ``demonstrations`` parameters)."""

    num_episodes: int = spec(64, ge=1, le=10**6, doc="episodes recorded, one per scenario")
    seed: int | None = spec(None, ge=0, lt=2**31, doc="seed of their scenarios (drawn like the agent's, sharing no "
                                                      "reset seed with its training or eval scenarios); null: the "
                                                      "agent's scenario seed + 2")
    seed_index: int | None = spec(None, ge=0, le=1023, doc="of a multi-seed agent, the seed recorded; null: the "
                                                           "best one (the served policy)")
    max_steps: int | None = spec(None, ge=1, le=10**7, doc="steps per episode at most; null: the env's limit")


class CompareConfig(Config):
    """Which stored runs ``kedro run --pipeline=compare`` puts side by side (the top-level ``compare``
    parameters)."""

    pipeline: str = spec("sac", doc="the training pipeline whose runs are compared (sac, ppo, ...)")
    runs: RunNames = spec((), doc="the runs: catalog versions (e.g. 2026-11-23T02.39.19.842Z, the Kedro session "
                                  "id) or MLflow run ids, as a list or one string separated by spaces (what "
                                  "--params can carry); empty: the newest `last` runs of the pipeline")
    last: int = spec(3, ge=1, le=100, doc="how many of the newest runs, when runs is empty")


# ------------------------------------------------------------------------------------------ mapping -> typed
def parse(cls: type[Config], data: Any, key: str):
    """Build config ``cls`` from a mapping, checking every key, type and bound; ``key`` is the dotted prefix.
    The first problem found (in the order of the keys, a section's unknown keys first) is a ConfigError."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise _config_error(cls, data, key, _first(error.errors(include_url=False))) from None


def _first(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The error a depth-first walk in key order meets first: pydantic lists a section's unknown keys after its
    fields' errors, while a section's unknown keys are reported before anything inside it."""
    first = errors[0]
    enclosing = [e for e in errors if e["type"] == "extra_forbidden"
                 and tuple(first["loc"][:len(e["loc"]) - 1]) == tuple(e["loc"][:-1])]
    return min(enclosing, key=lambda e: len(e["loc"])) if enclosing else first


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _config_error(cls: type[Config], data: Any, key: str, error: dict[str, Any]) -> ConfigError:
    """One pydantic error as a ConfigError in rlpipe's words."""
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    loc = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # a mapping's key (not its value) is bad
        loc = loc[:-1]

    def at(path):
        return key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)

    if kind == "missing" and loc and not isinstance(loc[-1], int):  # a required setting (a tuple's is below)
        return ConfigError(at(loc), "is required")
    if kind == "extra_forbidden":
        allowed = list(_type_at(cls, loc[:-1]).model_fields)
        name = str(loc[-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return ConfigError(at(loc), f"unknown key{hint}; allowed keys: {', '.join(allowed)}")
    if kind in ("model_type", "model_attributes_type"):
        return ConfigError(at(loc), f"expected a mapping of settings, got {_show(value)}")
    if kind == "dict_type":
        return ConfigError(at(loc), f"expected a mapping, got {_show(value)}")
    if kind == "bool_type":
        return ConfigError(at(loc), f"expected true or false, got {_show(value)}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return ConfigError(at(loc), f"expected an integer, got {_show(value)}")
    if kind in ("float_type", "float_parsing"):
        return ConfigError(at(loc), f"expected a number, got {_show(value)}")
    if kind == "finite_number":
        return ConfigError(at(loc), f"expected a finite number, got {float(value)}")
    if kind in ("string_type", "string_too_short"):
        return ConfigError(at(loc), f"expected a non-empty string, got {_show(value)}")
    if kind in ("literal_error", "config_choice"):
        if not isinstance(value, str) or not value:
            return ConfigError(at(loc), f"expected a non-empty string, got {_show(value)}")
        choices = ctx["allowed"] if kind == "config_choice" else typing.get_args(_type_at(cls, loc))
        return ConfigError(at(loc), f"{value!r} is not one of {', '.join(map(repr, choices))}")
    if kind in ("tuple_type", "list_type"):
        return ConfigError(at(loc), f"expected a list, got {_show(value)}")
    if kind in ("too_short", "too_long") or (kind == "missing" and loc and isinstance(loc[-1], int)):
        where = loc[:-1] if kind == "missing" else loc
        args = typing.get_args(_type_at(cls, where))
        if len(args) == 2 and args[1] is Ellipsis:
            return ConfigError(at(where), "expected a non-empty list")
        got = len(value) if hasattr(value, "__len__") else ctx.get("actual_length")
        return ConfigError(at(where), f"expected a list of {len(args)} values, got {got}")
    if kind in _BOUNDS:
        name, symbol = _BOUNDS[kind]
        if _type_at(cls, loc) is float:
            value = float(value)
        return ConfigError(at(loc), f"{value!r} is out of range: must be {symbol} {ctx[name]}")
    return ConfigError(at(loc), f"{error['msg']}, got {_show(value)}")  # no such error type is known to occur


def _strip(hint: Any) -> Any:
    """``hint`` without Annotated metadata and without its Optional."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(options) != 1:
                return hint
            hint = options[0]
        else:
            return hint


def _type_at(cls: type[Config], loc: tuple) -> Any:
    """The type that the value at ``loc`` (a pydantic error location) is validated as."""
    hint: Any = cls
    for part in loc:
        hint = _strip(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            hint = hint.model_fields[part].annotation
        elif origin is tuple:
            hint = args[0] if len(args) == 2 and args[1] is Ellipsis else args[part]
        elif origin is dict:
            hint = args[1]
        else:
            return None
    return _strip(hint)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def to_dict(config: Config) -> dict:
    """The plain nested-dict form of a config (JSON-ready: tuples become lists)."""
    return config.model_dump(mode="json")


# ------------------------------------------------------------------------------------------ cross-field rules
def check_divisible(value: int, key: str, num_devices: int) -> None:
    if value % num_devices:
        raise ConfigError(key, f"{value} must be divisible by the number of devices ({num_devices}, over all "
                               "processes): each device gets an equal share")


def check_tracking(tracking: TrackingConfig, scenarios: ScenarioConfig, key: str,
                   early_stopping: EarlyStoppingConfig | None = None) -> None:
    """``key``: the tracking section's; ``early_stopping``: the algorithm's section, if it has one."""
    if tracking.animation_scenario >= scenarios.num_eval:
        raise ConfigError(f"{key}.animation_scenario", f"{tracking.animation_scenario} is not a row of the "
                                                       f"{scenarios.num_eval} eval scenarios (0 .. {scenarios.num_eval - 1})")
    if tracking.register == "on_target" and tracking.target_return is None and (
            early_stopping is None or early_stopping.target_return is None):
        where = ("tracking.target_return or early_stopping.target_return" if early_stopping is not None
                 else "tracking.target_return")
        raise ConfigError(f"{key}.register", f"'on_target' needs a target return: set {where}")
    if tracking.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(f"{key}.tensorboard", "true needs the tensorboardX package: "
                                                    "pip install -e '.[tensorboard]'")


def registration_target(config: Any) -> float | None:
    """The eval mean return that ``tracking.register: on_target`` asks for: ``tracking.target_return``, else the
    algorithm's ``early_stopping.target_return`` (None if neither is set)."""
    if config.tracking.target_return is not None:
        return config.tracking.target_return
    early_stopping = getattr(config, "early_stopping", None)
    return early_stopping.target_return if early_stopping is not None else None


def check_init_from(train: LoopConfig, key: str) -> None:
    """``key``: the train section's."""
    if train.init_from is not None and train.resume:
        raise ConfigError(f"{key}.init_from", "a resumed run continues its own checkpoint; init_from starts a new "
                                              "run from another agent — set one of them")
    for name in ("init_from_optimizer", "init_from_buffer"):
        if getattr(train, name) and train.init_from is None:
            raise ConfigError(f"{key}.{name}", "true needs train.init_from (the stored agent to take it from)")


def check_evaluation(evaluation: EvaluationConfig, num_scenarios: int, key: str = "evaluation") -> None:
    """The ``evaluation`` section against the scenarios actually evaluated (``num_scenarios`` rows: the agent's
    scenarios.num_eval, or evaluation.num_scenarios)."""
    if evaluation.scenarios == "stored":
        for name in ("seed", "num_scenarios"):
            if getattr(evaluation, name) is not None:
                raise ConfigError(f"{key}.{name}", f"applies to fresh scenarios only; set {key}.scenarios: fresh, "
                                                   "or null")
    if evaluation.animation and evaluation.animation_scenario >= num_scenarios:
        raise ConfigError(f"{key}.animation_scenario",
                          f"{evaluation.animation_scenario} is not a row of the {num_scenarios} evaluated scenarios "
                          f"(0 .. {num_scenarios - 1})")


def check_env_metrics(metrics: tuple[str, ...], env_spec: Any, key: str) -> None:
    """Every named metric must be a key of what the env's step reports."""
    for name in metrics:
        if name not in env_spec.info_keys:
            reported = ", ".join(env_spec.info_keys) or "nothing"
            close = difflib.get_close_matches(name, env_spec.info_keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(key, f"{env_spec.id} never reports {name!r}{hint}; its steps report: {reported}")


def check_curriculum(config: Any, key: str, steps_per_iter: int) -> None:
    """``scenarios.curriculum``: re-weighting at most once per iteration, on a metric the evaluation reports."""
    c = config.scenarios.curriculum
    if c is None:
        return
    where = f"{key}.scenarios.curriculum"
    if c.every_env_steps < steps_per_iter:
        raise ConfigError(f"{where}.every_env_steps", f"{c.every_env_steps} is below one iteration "
                                                      f"({steps_per_iter} env steps)")
    if c.metric is not None and c.metric not in config.env.metrics:
        named = ", ".join(config.env.metrics) or "none"
        raise ConfigError(f"{where}.metric", f"{c.metric!r} is not one of the env metrics the evaluation reports "
                                             f"({key}.env.metrics: {named}); add it there")
    if config.scenarios.num_train < 2:
        raise ConfigError(f"{where}", f"a curriculum weighs several training scenarios; "
                                      f"{key}.scenarios.num_train is {config.scenarios.num_train}")


def check_seeds(config: Any, key: str) -> None:
    """A multi-seed run: seeds that stay valid seeds, and no single stored agent to start every seed from."""
    n = config.train.num_seeds
    if n == 1:
        return
    if config.seed + n - 1 >= 2**31:
        raise ConfigError(f"{key}.train.num_seeds", f"seeds {config.seed}..{config.seed + n - 1} run past 2**31 - 1: "
                                                    f"lower {key}.seed or the number of seeds")
    if config.train.init_from is not None:
        raise ConfigError(f"{key}.train.num_seeds", f"{n} seeds cannot all start from one stored agent "
                                                    f"({key}.train.init_from): use num_seeds: 1 with init_from")


def check_common(config: Any, key: str, num_devices: int | None, continuous: bool | None, steps_per_iter: int,
                 multi_agent: bool = False):
    """Rules every algorithm's config obeys (``num_devices``: all devices of all processes); returns the
    environment's EnvSpec. With ``num_devices`` None only the rules that need neither the environment nor the
    device count (nothing heavy is imported), and None is returned. Only a ``multi_agent`` algorithm takes a
    joint env whose agents act discretely (their actions are per-agent scores, see ``rlpipe.rl.envs.jaxmarl``)."""
    t = config.train
    check_tracking(config.tracking, config.scenarios, f"{key}.tracking", getattr(config, "early_stopping", None))
    if t.log_every_env_steps < steps_per_iter:
        raise ConfigError(f"{key}.train.log_every_env_steps",
                          f"{t.log_every_env_steps} is below one iteration ({steps_per_iter} env steps)")
    check_init_from(t, f"{key}.train")
    check_seeds(config, key)
    check_curriculum(config, key, steps_per_iter)
    net = config.network
    if net.kwargs and net.module is None:
        raise ConfigError(f"{key}.network.kwargs", "given without network.module (the class they are for)")
    every = config.tracking.video_every_env_steps
    if every and every < t.log_every_env_steps:
        raise ConfigError(f"{key}.tracking.video_every_env_steps",
                          f"{every} is below {key}.train.log_every_env_steps ({t.log_every_env_steps}): videos are "
                          "made between compiled calls, at most one per progress line; raise this or lower that")
    if num_devices is None:
        return None
    from rlpipe.rl.envs import check_env_id, check_scenario_ranges  # envs import jax: keep config import light

    env_spec = check_env_id(config.env.id, f"{key}.env.id", continuous=continuous, env_config=config.env)
    if config.env.id.startswith("jaxmarl:") and env_spec.env.discrete and not multi_agent:
        raise ConfigError(f"{key}.env.id", f"{config.env.id!r} is a multi-agent env with discrete actions: train it "
                                           "with the masac pipeline (or give it continuous actions, e.g. MPE tasks' "
                                           "env.kwargs {action_type: Continuous})")
    if t.num_seeds > 1 and env_spec.host is not None:
        raise ConfigError(f"{key}.train.num_seeds", f"{t.num_seeds} seeds in one program need a JAX environment; "
                                                    f"{config.env.id} is stepped on the host: run its seeds as "
                                                    "separate runs (train.num_seeds: 1, seed: 0, 1, ...)")
    check_env_metrics(config.env.metrics, env_spec, f"{key}.env.metrics")
    check_scenario_ranges(config.scenarios.ranges, env_spec, f"{key}.scenarios.ranges")
    check_divisible(t.num_envs, f"{key}.train.num_envs", num_devices)
    return env_spec


def agent_obs_dim(config: Any, key: str, env_spec: Any) -> int:
    """How many observation values the agent sees: the env's, or those ``env.observation_mask`` keeps (checked
    against the env here: a ConfigError on ``<key>.env.observation_mask``)."""
    from rlpipe.rl.envs.registry import observation_mask

    mask = observation_mask(config.env.observation_mask, env_spec.id, env_spec.obs_dim, f"{key}.env.observation_mask")
    return env_spec.obs_dim if mask is None else len(mask)


def check_networks(config: Any, key: str, inputs: dict[str, int]) -> None:
    """Each torso by name (``network.module``, ``network.actor``, ``network.critic``) imported, built and
    shape-checked on a dummy input of its role's width (``inputs``: role -> input features)."""
    net = config.network
    for role, in_dim in inputs.items():
        torso = net.torso(role)
        if torso is None:
            continue
        from rlpipe.rl.networks import check_torso  # flax: only for a config that names a module

        check_torso(torso, in_dim, f"{key}.network.{role}" if getattr(net, role) is not None else f"{key}.network")
