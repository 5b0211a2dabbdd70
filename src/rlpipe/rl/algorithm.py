"""The Algorithm base class (the contract every plugin implements) and the registry of algorithms.

An algorithm is a plugin: everything generic (the device mesh, the compiled chunk, the host loop, checkpoints,
evaluation, policies, progress, the Kedro stages) talks to it through :class:`Algorithm` and finds it here by
name. Adding one is a folder ``rl/<name>/`` with a subclass of :class:`Algorithm` and a config module, one line in
``REGISTRY`` and its parameter file (see docs/adding-an-algorithm.md): its Kedro pipelines are built from this
table. Configs are found without importing the plugin (nor JAX): a bad key is reported before anything heavy is
loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

from rlpipe.rl.config import parse
from rlpipe.rl.config.rules import data_devices

class Plugin(NamedTuple):
    algorithm: str  # "module:attribute" of the :class:`Algorithm` instance (imported on first use)
    config: str  # "module:class" of its config; the module's ``check(config, key, num_devices)`` holds its rules
    # parameter namespaces of its other pipelines that hold this config under their own name (e.g. ppo_imitation)
    namespaces: tuple[str, ...] = ()
    # the train stage takes an extra per-device input (``Algorithm.initial_device_data`` and the two hooks after
    # it, e.g. a replay buffer's random-action start), drawn by a stage of its own before training; without one,
    # the train stage's device data is None
    prefill_buffer: bool = False


REGISTRY: dict[str, Plugin] = {
    "sac": Plugin("rlpipe.rl.sac.algorithm:SAC", "rlpipe.rl.sac.config:SACConfig", prefill_buffer=True),
    "ppo": Plugin("rlpipe.rl.ppo.plugin:PPO", "rlpipe.rl.ppo.config:PPOConfig", namespaces=("ppo_imitation",)),
    "masac": Plugin("rlpipe.rl.masac.algorithm:MASAC", "rlpipe.rl.masac.config:MASACConfig", prefill_buffer=True),
}
# the algorithm of a run that names none (``kedro run`` without ``--pipelines``): the first one registered
DEFAULT = next(iter(REGISTRY))


class IterationOutput(NamedTuple):
    training: Any  # the new training state (identical on every device)
    device: Any  # the new per-device state
    metrics: dict[str, Any]  # scalars named in ``metric_names`` (this device's values; averaged over devices)
    episodes: Any  # rlpipe.rl.acting.EpisodeStats of the episodes this device finished


class Algorithm:
    """What the generic training core needs from an algorithm: every hook it calls, declared here.

    A plugin subclasses this and overrides what it needs. The hooks without a default (they raise
    ``NotImplementedError``) and the first four attributes are required; every other hook has the documented
    default, so generic code calls each hook plainly and never asks whether a plugin has it. A variant of an
    algorithm (multi-agent SAC, recurrent PPO, PPO imitation) subclasses its parent's plugin and overrides hooks:
    its code lives in its own module, never as a branch in its parent or in generic code."""

    name: str  # registry name, pipeline namespace and the policy bundle's "algorithm"
    config_class: type  # its config (an rlpipe.rl.config.Config; the one REGISTRY names)
    metric_names: tuple[str, ...]  # per-iteration metrics, averaged over a chunk's iterations and over devices
    # training-state fields a run started with ``train.init_from`` takes from the stored agent: "params" always,
    # "optimizer" with ``train.init_from_optimizer`` (the rest, e.g. counters, start fresh)
    inheritable: dict[str, tuple[str, ...]]
    progress_labels: tuple[tuple[str, str], ...] = ()  # (metric, short label) shown on progress lines
    # metrics the learning curve plots below the returns: (losses, other diagnostics), e.g. SAC's temperature
    curve_panels: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    # ------------------------------------------------------------------------------------- budget and metrics
    def steps_per_iteration(self, config: Any) -> tuple[int, int]:
        """(env steps, gradient steps) of one iteration over all devices."""
        raise NotImplementedError(f"{type(self).__name__}.steps_per_iteration")

    def env_steps_before_training(self, config: Any) -> int:
        """Env steps taken before the first iteration (e.g. a replay-buffer prefill); by default 0."""
        return 0

    def metrics_of(self, config: Any) -> tuple[str, ...]:
        """The per-iteration metrics under ``config``, for algorithms whose metrics depend on it (PPO imitation's
        discriminator diagnostics); by default ``metric_names``."""
        return tuple(self.metric_names)

    def evaluation_metrics(self, config: Any, spec: Any) -> tuple[str, ...]:
        """Env metrics an evaluation reports beyond the configured ``env.metrics`` (multi-agent SAC: each agent's
        own reward); by default none."""
        return ()

    # ------------------------------------------------------------------------------------------------- state
    def init_training_state(self, config: Any, spec: Any, key: Any) -> Any:
        """Networks, optimizer states, counters: the state every device holds identically."""
        raise NotImplementedError(f"{type(self).__name__}.init_training_state")

    def initial_device_data(self, config: Any, spec: Any, scenarios: Any, seed: int) -> Any:
        """The train stage's extra input for one seed, drawn as the algorithm's own pipeline draws it (SAC: its
        random-action prefill), for callers that run training without that pipeline (a search's trials, the
        library's multi-seed helpers); by default None: the train stage needs none."""
        return None

    def resumed_device_data(self, config: Any, spec: Any) -> Any:
        """The train stage's extra input of a resumed run, whose checkpoint already holds what that input seeds
        (SAC: no transitions, the buffer is in the checkpoint); by default None."""
        return None

    def inherited_device_data(self, config: Any, open_parent: Callable[[], tuple[Any, str]],
                              num_devices: int) -> Any:
        """With ``train.init_from``: the train stage's extra input taken from the stored parent agent (SAC with
        ``train.init_from_buffer``: the newest transitions of its replay buffer), or None to draw it fresh as
        :meth:`initial_device_data` does. ``open_parent()`` returns (stored agent, its version); it reads the
        agent store, so call it only when something is inherited. By default None."""
        return None

    def init_device_state(self, config: Any, spec: Any, scenarios: Any, key: Any, num_devices: int,
                          device_data: Any) -> Any:
        """One device's own state (runs inside the compiled program, once per device, with its own ``key``): its
        share (``1 / num_devices``) of freshly reset environments, buffers, ...; ``device_data`` is its slice of
        the train node's extra input (e.g. the prefill transitions), or None. Leaves with a leading axis are
        per-device; scalars must come out identical on every device."""
        raise NotImplementedError(f"{type(self).__name__}.init_device_state")

    def make_iteration(self, config: Any, spec: Any, num_devices: int) -> Callable[..., IterationOutput]:
        """``iteration(scenarios, training, device, key) -> IterationOutput``: one iteration on one device
        (inside ``shard_map``; ``key`` is this device's own). Average gradients and statistics over
        ``rlpipe.rl.mesh.AXIS`` so the training state stays identical on every device."""
        raise NotImplementedError(f"{type(self).__name__}.make_iteration")

    def redistribute_device_state(self, device: Any, old_devices: int, new_devices: int) -> Any:
        """Checkpointed per-device state (numpy, global layout) written on ``old_devices`` devices, laid out for
        ``new_devices``: what cannot simply be re-split along the leading axis (ring buffers) is rebuilt here. By
        default the state as it is: every leaf is per env (or per item) and re-splits along its leading axis."""
        return device

    # ------------------------------------------------------------------------------------------------ policy
    def policy_meta(self, config: Any, spec: Any) -> dict[str, Any]:
        """The policy bundle's meta (JSON-able): what :meth:`make_policy` needs to rebuild the policy."""
        raise NotImplementedError(f"{type(self).__name__}.policy_meta")

    def policy_params(self, training: Any) -> Any:
        """The policy bundle's params, from a training state (as a dataclass or as the dicts a checkpoint holds)."""
        raise NotImplementedError(f"{type(self).__name__}.policy_params")

    def make_policy(self, meta: dict[str, Any]) -> Callable[..., Any]:
        """``act(params, obs [B, obs_dim]) -> env actions``: the deterministic policy of a bundle (traceable). With
        ``meta["policy_state_size"]`` (a policy with memory): ``act(params, obs, state [B, size]) -> (env actions,
        next state)``, every episode starting from zeros."""
        raise NotImplementedError(f"{type(self).__name__}.make_policy")

    def make_agent_policy(self, meta: dict[str, Any]) -> Callable[[Any, Any], Any]:
        """``act(params, rows) -> env actions`` of a multi-agent bundle taking one agent per row (its own
        observation and one-hot id; how the served model takes agents one by one). By default a ValueError: the
        bundle's policy acts on whole observations only."""
        raise ValueError(f"a {meta.get('algorithm', self.name)} policy acts on whole observations; it takes no "
                         f"per-agent rows")


def metric_names(algorithm: Algorithm, config: Any) -> tuple[str, ...]:
    """The per-iteration metrics of ``algorithm`` under ``config`` (its ``metrics_of``)."""
    return tuple(algorithm.metrics_of(config))


def get(name: str) -> Algorithm:
    """The registered algorithm ``name``; an unknown name is a ValueError listing the known ones."""
    return _load(name)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def for_config(config: Any) -> Algorithm:
    """The algorithm whose config class ``config`` is an instance of."""
    for name in REGISTRY:
        algorithm = _load(name)
        if type(config) is algorithm.config_class:
            return algorithm
    raise TypeError(f"{type(config).__name__} is the config of no registered algorithm ({', '.join(REGISTRY)})")


def load_config(name: str, raw: Any, num_devices: int | None, key: str | None = None) -> Any:
    """``raw`` (what Kedro hands over as ``params:<name>``) validated into the algorithm's typed config for
    ``num_devices`` devices; any bad key or value is a ``ConfigError`` naming it (prefixed with ``key``).

    With ``num_devices`` None only the rules that need neither the environment nor the device count are checked,
    and nothing heavy is imported (no JAX, no environments): what runs before a pipeline starts."""
    config_class, check = config_of(name)
    key = key or name
    config = parse(config_class, raw, key)
    if num_devices is not None:  # the rules on splitting data count the devices of one seed's group
        num_devices = data_devices(config, key, num_devices)
    check(config, key, num_devices)
    return config


def config_of(name: str) -> tuple[type, Callable[..., None]]:
    """The config class of algorithm ``name`` and its module's ``check`` (imports neither the plugin nor JAX)."""
    plugin = REGISTRY.get(name)
    if plugin is None:
        raise ValueError(f"unknown algorithm {name!r}; registered: {', '.join(REGISTRY)}")
    module_name, _, attribute = plugin.config.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute), module.check


def _load(name: str) -> Algorithm:
    plugin = REGISTRY.get(name)
    if plugin is None:
        raise ValueError(f"unknown algorithm {name!r}; registered: {', '.join(REGISTRY)}")
    module, _, attribute = plugin.algorithm.partition(":")
    return getattr(importlib.import_module(module), attribute)
