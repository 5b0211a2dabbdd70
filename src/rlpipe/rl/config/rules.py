"""Cross-field rules every algorithm's config obeys: what one field cannot say alone (sizes that split evenly over
the devices, a cadence not below one iteration, a metric the environment reports, ...).

``check_common`` runs them for an algorithm's ``check`` (in ``rl/<algo>/config.py``, which adds the algorithm's
own). Rules that need the environment or the device count import them late, so validating a config without them
(before a pipeline starts) stays light: no JAX.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from rlpipe.rl.config.sections import (
    EarlyStoppingConfig,
    EvaluationConfig,
    LoopConfig,
    ScenarioConfig,
    TrackingConfig,
)
from rlpipe.rl import mesh
from rlpipe.rl.peers import RESUME_ENV  # the override a restarted process gets
from rlpipe.rl.errors import ConfigError


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


_RESUME_WORDS = {"true": True, "false": False, "auto": "auto"}


def resume_mode(train: LoopConfig, key: str) -> bool | str:
    """``train.resume`` as the run applies it: ``RLPIPE_RESUME`` (true, false or auto), when set, overrides the
    config's value, so a launcher or scheduler that restarts processes asks for ``auto`` without editing the
    user's files. ``key``: the train section's."""
    raw = os.environ.get(RESUME_ENV, "").strip()
    if not raw:
        return train.resume
    if raw.lower() not in _RESUME_WORDS:
        raise ConfigError(f"{key}.resume", f"{RESUME_ENV}={raw!r} (set in the environment, overriding it) is not "
                                           "one of true, false, auto")
    return _RESUME_WORDS[raw.lower()]


def check_init_from(train: LoopConfig, key: str) -> None:
    """``key``: the train section's. ``resume: auto`` goes with ``init_from``: a fresh start takes the stored
    agent, a resumed one continues its own checkpoint (of the same config, init_from included)."""
    resume = resume_mode(train, key)  # a bad RLPIPE_RESUME is a config error before anything runs
    if train.init_from is not None and resume is True:
        raise ConfigError(f"{key}.init_from", "a resumed run continues its own checkpoint; init_from starts a new "
                                              "run from another agent — set one of them (or train.resume: auto, "
                                              "which starts from init_from only when there is nothing to resume)")
    for name in type(train).model_fields:  # init_from_optimizer, and what an algorithm's train section adds
        if name.startswith("init_from_") and getattr(train, name) is True and train.init_from is None:
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


def data_devices(config: Any, key: str, num_devices: int) -> int:
    """The devices each seed's data is split over, for ``num_devices`` over all processes: the seed layout
    (``train.seeds_per_device``, ``rlpipe.rl.mesh.seed_groups``) must divide them."""
    t = config.train
    try:
        groups = mesh.seed_groups(t.num_seeds, getattr(t, "seeds_per_device", None), num_devices, mesh.process_count())
    except ValueError as exc:
        raise ConfigError(f"{key}.train.seeds_per_device", f"{exc} ({key}.train.num_seeds: {t.num_seeds}, "
                                                           f"{key}.train.seeds_per_device: {t.seeds_per_device}, "
                                                           f"{num_devices} device(s))") from None
    return num_devices // groups


def check_common(config: Any, key: str, num_devices: int | None, continuous: bool | None, steps_per_iter: int,
                 multi_agent: bool = False):
    """Rules every algorithm's config obeys (``num_devices``: all devices of all processes); returns the
    environment's EnvSpec. With ``num_devices`` None only the rules that need neither the environment nor the
    device count (nothing heavy is imported), and None is returned. ``multi_agent``: the algorithm takes every
    multi-agent env (the env registry refuses a single-agent algorithm the ones it cannot learn)."""
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

    env_spec = check_env_id(config.env.id, f"{key}.env.id", continuous=continuous, env_config=config.env,
                            multi_agent=multi_agent)
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
