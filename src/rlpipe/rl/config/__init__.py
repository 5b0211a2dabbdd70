"""Typed run configuration and its validation, split by job:

- :mod:`~rlpipe.rl.config.fields`: the field DSL (the strict frozen ``Config`` base, ``spec``, ``redefault``, the
  reusable field types);
- :mod:`~rlpipe.rl.config.sections`: the sections every algorithm shares, and the top-level ones of
  ``parameters.yml``;
- :mod:`~rlpipe.rl.config.messages`: ``parse``, a raw mapping (what Kedro hands over as ``params:sac``) into a
  typed config, with every problem reported as one :class:`ConfigError` naming the dotted key;
- :mod:`~rlpipe.rl.config.rules`: the cross-field rules.

An algorithm's own sections and rules are in ``rl/<algo>/config.py``. The typed configs are the one home of every
default; ``python -m rlpipe.schemas`` writes their JSON Schemas to ``conf/schemas/``. This package re-exports the
names the rest of the project imports from ``rlpipe.rl.config``.
"""

from rlpipe.rl.config.fields import (
    Activation,
    Config,
    HiddenSizes,
    Interval,
    Kwargs,
    ModulePath,
    Names,
    ObservationMask,
    Ranges,
    RunNames,
    as_dict,
    as_tuple,
    dotted,
    redefault,
    section_defaults,
    spec,
    strip_optional,
    to_dict,
)
from rlpipe.rl.config.messages import parse
from rlpipe.rl.config.rules import (
    RESUME_ENV,
    agent_obs_dim,
    check_common,
    check_curriculum,
    check_divisible,
    check_env_metrics,
    check_evaluation,
    check_init_from,
    check_networks,
    check_seeds,
    check_tracking,
    registration_target,
    resume_mode,
)
from rlpipe.rl.config.sections import (
    CompareConfig,
    CurriculumConfig,
    DemonstrationsConfig,
    DistributedConfig,
    EarlyStoppingConfig,
    EnvConfig,
    EvaluationConfig,
    LoopConfig,
    ModuleConfig,
    NetworkConfig,
    ScenarioConfig,
    TrackingConfig,
    env_config,
)
from rlpipe.rl.errors import ConfigError

# the names these had when the package was one module (rlpipe.rl.tuning imports them)
_as_dict, _as_tuple = as_dict, as_tuple

__all__ = [
    "Activation", "CompareConfig", "Config", "ConfigError", "CurriculumConfig", "DemonstrationsConfig",
    "DistributedConfig", "EarlyStoppingConfig", "EnvConfig", "EvaluationConfig", "HiddenSizes", "Interval", "Kwargs",
    "LoopConfig", "ModuleConfig", "ModulePath", "Names", "NetworkConfig", "ObservationMask", "Ranges", "RunNames",
    "ScenarioConfig", "TrackingConfig", "agent_obs_dim", "as_dict", "as_tuple",
    "dotted", "check_common", "check_curriculum",
    "check_divisible", "check_env_metrics", "check_evaluation", "check_init_from", "check_networks", "check_seeds",
    "check_tracking", "env_config", "parse", "redefault", "registration_target", "RESUME_ENV", "resume_mode",
    "section_defaults", "spec",
    "strip_optional", "to_dict",
]
