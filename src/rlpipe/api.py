"""rlpipe from a script or a notebook, without a Kedro session: ``train`` a run from a config, ``load_agent`` a
stored agent, ``evaluate`` it.

A run here is the run ``kedro run --pipelines=<algorithm>`` makes (the same stages in the same order with the same
RNG keys, through ``rlpipe.rl.run``), so the same config gives the same bits. What only the Kedro layer adds is
not done here: the versioned catalog copies, MLflow tracking, plots and videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import run
from rlpipe.rl.agents import CheckpointStore
from rlpipe.rl.checkpoint import StoredCheckpoint
from rlpipe.rl.compilation_cache import cache_dir_for, use_compilation_cache
from rlpipe.rl.errors import ConfigError

__all__ = ["Agent", "Evaluation", "Result", "evaluate", "load_agent", "train"]


@dataclass
class Agent:
    """A stored agent: the checkpoint a training run ended with (its state, and in ``meta`` its algorithm, typed
    config, env steps and training history). ``policy`` is its deterministic policy bundle
    (``rlpipe.rl.policies``): of a multi-seed agent, the best seed's unless ``load_agent`` asked for another."""

    path: Path
    algorithm: str
    config: Any
    env_steps: int
    policy: dict[str, Any]
    checkpoint: StoredCheckpoint

    @property
    def meta(self) -> dict[str, Any]:
        """The checkpoint's meta (``meta.json``)."""
        return self.checkpoint.meta


@dataclass
class Evaluation:
    """One deterministic episode per scenario: the per-scenario table (``scenario_id``, ``return``, ``length``
    and the env's own metrics) and its summary (mean, spread, the agent's env steps)."""

    episodes: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class Result:
    """A finished training run.

    ``agent``: the final checkpoint (under ``train.checkpoint_dir``); ``history``: a row per point of the learning
    curve; ``eval_summary``, ``eval_episodes`` (and ``eval_seeds``, a row per seed): the final policy on the
    held-out eval scenarios; ``policy``: the exported policy bundle (of a multi-seed run, the best seed's);
    ``config``: the typed config the run used.
    """

    config: Any
    agent: Agent
    history: pd.DataFrame
    eval_summary: dict[str, Any]
    eval_episodes: pd.DataFrame
    eval_seeds: pd.DataFrame
    policy: dict[str, Any]
    scenarios_train: pd.DataFrame
    scenarios_eval: pd.DataFrame
    scenario_weights: pd.DataFrame


def train(config: Any, overrides: dict[str, Any] | None = None, *, root: str | os.PathLike | None = None,
          agents: str | os.PathLike | None = None, on_progress: Any = None) -> Result:
    """Train, checkpoint and evaluate an agent; returns the :class:`Result`.

    ``config`` is one of: a typed config (e.g. ``rlpipe.rl.sac.config.SACConfig(...)``); an algorithm's name
    (``"sac"``, ``"ppo"``, ``"masac"``: its defaults); or the path of a parameter file whose one top-level key
    names the algorithm (as ``conf/base/parameters_sac.yml``). ``overrides`` (nested dicts, e.g.
    ``{"train": {"total_env_steps": 2000}}``) go on top. A bad key or value raises ``ConfigError`` naming it
    (``sac.train.total_env_stepz``) before anything is compiled.

    Relative paths in the config (checkpoints, TensorBoard) are under ``root`` (default: the cwd). Compiled
    programs are cached as ``kedro run`` caches them, in ``<root>/.jax_cache`` (``RLPIPE_JAX_CACHE_DIR`` names
    another folder; empty, no cache), unless this process already has a compilation cache folder.
    ``agents``: the folder of stored agent versions ``train.init_from`` picks from (default:
    ``<root>/data/06_models/<algorithm>/agent``, where ``kedro run`` stores them). ``on_progress`` gets every
    progress row (a dict: ``env_steps``, returns, losses) as training goes.
    """
    typed = resolve_config(config, overrides)
    name = algorithms.for_config(typed).name
    base = Path(root) if root is not None else Path.cwd()
    _cache_programs(base)
    store = CheckpointStore(Path(agents) if agents is not None else base / "data/06_models" / name / "agent")
    out = run.train(typed, agent_store=store, root=base, on_progress=on_progress)
    agent = load_agent(out.trained.agent.path)
    return Result(typed, agent, out.trained.history, out.eval_summary, out.eval_episodes, out.eval_seeds,
                  out.policy, out.scenarios_train, out.scenarios_eval, out.trained.scenario_weights)


def _cache_programs(root: Path) -> None:
    """The persistent compilation cache of ``kedro run`` (``rlpipe.rl.compilation_cache``) for the project at
    ``root``, unless this process already has one (the user's own, or an earlier run's)."""
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        use_compilation_cache(cache_dir_for(root))


def resolve_config(config: Any, overrides: dict[str, Any] | None = None) -> Any:
    """The typed config ``train`` runs (see there), validated for this machine's devices."""
    from rlpipe.rl.config import to_dict

    if isinstance(config, (str, os.PathLike)) and str(config) in algorithms.names():
        name, params = str(config), {}
    elif isinstance(config, (str, os.PathLike)):
        name, params = _parameter_file(Path(config))
    else:
        try:
            name = algorithms.for_config(config).name
        except TypeError:
            raise ConfigError("config", f"a {type(config).__name__}: give a typed config, an algorithm's name "
                                        f"({', '.join(algorithms.names())}) or a parameter file") from None
        params = to_dict(config)
    return run.validated_config(name, _merged(params, overrides or {}))


def _parameter_file(path: Path) -> tuple[str, dict[str, Any]]:
    """(algorithm, parameters) of a parameter file: one top-level key, the algorithm's name."""
    import yaml

    if not path.is_file():
        raise ConfigError("config", f"{str(path)!r} is neither a registered algorithm "
                                    f"({', '.join(algorithms.names())}) nor a parameter file")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError("config", f"{path} is not YAML: {error}") from None
    keys = [k for k in (loaded or {}) if k in algorithms.names()] if isinstance(loaded, dict) else []
    if len(keys) != 1:
        raise ConfigError("config", f"{path} must have exactly one top-level key naming an algorithm "
                                    f"({', '.join(algorithms.names())}); it has {list(loaded or {})}")
    return keys[0], loaded[keys[0]] or {}


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_agent(path: str | os.PathLike, seed_index: int | None = None) -> Agent:
    """The stored agent at ``path``: a checkpoint folder (``Result.agent.path``, a run's ``step_N``) or a version
    of a catalog entry (``data/06_models/sac/agent/<version>/agent``). Of a multi-seed agent, its policy is seed
    ``seed_index``'s (default: the best seed's, the one a run exports)."""
    from rlpipe.rl.agents import policy_of_agent

    checkpoint = StoredCheckpoint(path)
    if not (checkpoint.path / "meta.json").is_file():
        raise FileNotFoundError(f"{checkpoint.path} is not a stored agent (no meta.json)")
    name = checkpoint.meta["algorithm"]
    policy, config = policy_of_agent(checkpoint, f"{name}.agent", seed_index)
    return Agent(checkpoint.path, name, config, int(checkpoint.meta["env_steps"]), policy, checkpoint)


def evaluate(agent: Agent | str | os.PathLike, scenarios: str = "stored", *, seed: int | None = None,
             num_scenarios: int | None = None) -> Evaluation:
    """One deterministic episode of the agent's policy per scenario: ``scenarios="stored"``, the agent's own
    held-out eval scenarios (regenerated from its config: the summary is its training run's final evaluation,
    exactly), or ``"fresh"`` ones drawn from ``seed`` (default: the agent's scenario seed + 1), ``num_scenarios``
    of them (default: its ``scenarios.num_eval``), sharing no reset seed with its training scenarios. ``agent``:
    a loaded :class:`Agent` or a path for ``load_agent``."""
    from rlpipe.rl.eval_tables import eval_scenarios, evaluate_policy

    if not isinstance(agent, Agent):
        agent = load_agent(agent)
    settings = {"scenarios": scenarios, "seed": seed, "num_scenarios": num_scenarios}
    table = eval_scenarios(agent.config, settings)
    episodes, summary = evaluate_policy(agent.config, agent.policy, table, f"{agent.algorithm}.scenarios_eval")
    return Evaluation(episodes, summary)
