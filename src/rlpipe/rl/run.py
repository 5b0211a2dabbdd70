"""The one place a run is assembled: config -> scenario tables -> initial state -> where it starts (resume, found
once) -> initial device data -> the training run -> policy export and evaluation tables.

Each stage is one function; the Kedro nodes call them one each, and ``train`` composes them in the pipeline's
order with the same RNG keys, so a run through ``train`` and a ``kedro run`` of the same config give the same
bits. The algorithm is found through the registry (by name, or by its config's class): nothing here names one.
No Kedro: relative paths in the config are under ``root`` (the project root; by default the cwd).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, peers
from rlpipe.rl.agents import export_policy, export_seed_policies, parent_part
from rlpipe.rl.checkpoint import StoredCheckpoint
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.eval_tables import evaluation_tables
from rlpipe.rl.training_run import ResumePoint, find_resume, training_run

logger = logging.getLogger(__name__)

RUN_FOLDER = "run_folder"  # the key of a progress row (``train_agent``) naming the run's checkpoint folder


def validated_config(algorithm: str, params: Any, key: str | None = None) -> Any:
    """``params`` (an algorithm's parameters, e.g. ``params:<algorithm>``) as the algorithm's typed config for
    this run's devices; any bad key or value is a ``ConfigError`` naming it (prefixed with ``key``, by default the
    algorithm's name), before any work."""
    config = algorithms.load_config(algorithm, params, mesh.device_count(), key)
    logger.info("%s on %s, seed %d, %d env steps, %d device(s) in %d process(es)", algorithm.upper(), config.env.id,
                config.seed, config.train.total_env_steps, mesh.device_count(), mesh.process_count())
    return config


def scenario_tables(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables, drawn from the config's scenario seed."""
    from rlpipe.rl.envs import env_spec, generate_scenarios
    from rlpipe.rl.keys import scenario_seed

    s = config.scenarios
    return generate_scenarios(env_spec(config.env), s.ranges, s.num_train, s.num_eval, scenario_seed(config))


def initial_state(config: Any, agent_store: Any = None) -> tuple[Any, dict[str, Any]]:
    """The algorithm's fresh training state (networks, optimizers, counters), or with ``train.init_from`` one that
    starts from a stored agent's parameters (and, if asked, its optimizer state); and the run's lineage: the
    parent agent's version, or an empty dict. ``agent_store`` has ``open(version, key) -> (agent, version)``
    (``rlpipe.datasets.CheckpointStore``); only ``train.init_from`` reads it."""
    from rlpipe.rl.envs import env_spec
    from rlpipe.rl.keys import stage_key
    from rlpipe.rl.seeds import over_seeds
    from rlpipe.rl.training import inherit

    algorithm = algorithms.for_config(config)
    spec = env_spec(config.env)
    fresh = over_seeds(config, lambda seed: algorithm.init_training_state(config, spec, stage_key(seed, "init")))
    t = config.train  # init_from is refused for a many-seed run: what follows has one seed
    if t.init_from is None:
        return fresh, {}
    key = f"{algorithm.name}.train.init_from"
    if agent_store is None:
        raise ConfigError(key, f"{t.init_from!r}: this run has no store of agents to start from")
    parent, version = agent_store.open(t.init_from, key)
    parent_algorithm = parent["meta"].get("algorithm")
    if parent_algorithm != algorithm.name:
        raise ConfigError(key, f"{version!r} is a {parent_algorithm} agent; a {algorithm.name} run starts only from "
                               f"a {algorithm.name} agent")
    training = inherit(algorithm, fresh, parent_part(parent, "training"), optimizer=t.init_from_optimizer, key=key)
    taken = {name.removeprefix("init_from_"): value for name, value in t if name.startswith("init_from_")}
    lineage = {"parent_algorithm": parent_algorithm, "parent_version": version,
               "parent_env_steps": int(parent["meta"]["env_steps"]), **taken}  # optimizer, and any an algorithm adds
    logger.info("%s starts from stored agent %s (%d env steps): parameters%s%s", algorithm.name, version,
                lineage["parent_env_steps"], ", optimizer state" if t.init_from_optimizer else "",
                ", replay buffer" if taken.get("buffer") else "")
    return training, lineage


def initial_device_data(config: Any, scenarios_train: pd.DataFrame, agent_store: Any = None,
                        lineage: dict[str, Any] | None = None, start: ResumePoint = ResumePoint()) -> Any:
    """The training core's extra input of an algorithm that has one (a replay buffer's first transitions), or
    None: fresh, every seed's own draw as a one-seed run with that seed draws it; none when ``start`` resumes (the
    checkpoint holds the buffer); with ``train.init_from_buffer`` the parent agent's (``lineage`` names it)."""
    from rlpipe.rl.envs import env_spec, scenarios_to_batch
    from rlpipe.rl.seeds import over_seeds

    algorithm = algorithms.for_config(config)
    if not algorithms.REGISTRY[algorithm.name].prefill_buffer:
        return None
    name, spec = algorithm.name, env_spec(config.env)
    if start.resuming:
        logger.info("%s.prefill_buffer: resuming an interrupted run, whose checkpoint holds what prefill would "
                    "draw: no prefill", name)
        return over_seeds(config, lambda seed: algorithm.resumed_device_data(config, spec))
    if config.train.init_from is not None:
        def open_parent() -> tuple[Any, str]:
            return agent_store.open(lineage["parent_version"], f"{name}.train.init_from")

        inherited = algorithm.inherited_device_data(config, open_parent, mesh.device_count())
        if inherited is not None:
            return inherited
    batch = scenarios_to_batch(scenarios_train, spec, f"{name}.scenarios_train")
    return over_seeds(config, lambda seed: algorithm.initial_device_data(config, spec, batch, seed))


def run_training(config: Any, state: Any, scenarios_train: pd.DataFrame, scenarios_eval: pd.DataFrame | None,
                 device_data: Any = None, **callbacks: Any) -> Any:
    """The training core on the scenario tables with the run's ``train`` keys: ``rlpipe.rl.training.TrainResult``.
    ``callbacks`` are the core's (``on_progress``, ``on_checkpoint``, ``resume``, ``on_policy``); without
    ``scenarios_eval`` nothing is evaluated. No run folder, no checkpoints unless ``on_checkpoint`` writes them:
    what ``train_agent`` wraps, and what a search's trials and tests run."""
    from rlpipe.rl import training
    from rlpipe.rl.envs import env_spec, scenarios_to_batch
    from rlpipe.rl.seeds import stage_keys

    algorithm = algorithms.for_config(config)
    name, spec = algorithm.name, env_spec(config.env)
    train_batch = scenarios_to_batch(scenarios_train, spec, f"{name}.scenarios_train")
    eval_batch = None if scenarios_eval is None else scenarios_to_batch(scenarios_eval, spec,
                                                                          f"{name}.scenarios_eval")
    return training.train(algorithm, config, spec, train_batch, state, stage_keys(config, "train"),
                          device_data=device_data, eval_scenarios=eval_batch, **callbacks)


@dataclass
class TrainedAgent:
    """What the training run leaves: the agent (its final checkpoint), the history table, the final policy's
    evaluation episodes (per eval scenario) and the training scenarios' draw weights at the end."""

    agent: StoredCheckpoint
    history: pd.DataFrame
    final_evaluation: dict[str, Any]
    scenario_weights: pd.DataFrame


def train_agent(config: Any, state: Any, lineage: dict[str, Any], start: ResumePoint, scenarios_train: pd.DataFrame,
                scenarios_eval: pd.DataFrame, device_data: Any = None, *, root: str | os.PathLike | None = None,
                on_progress: Callable[[dict[str, Any]], None] | None = None,
                on_policy: tuple[int, Callable[[int, dict[str, Any]], None]] | None = None) -> TrainedAgent:
    """Train to ``total_env_steps`` in a run folder under ``train.checkpoint_dir`` with periodic checkpoints and
    evaluations, on every device of every process, from ``start`` (a fresh state, or the interrupted run it
    resumes). ``lineage`` (the stored agent of ``train.init_from``, or empty) goes into the agent's meta;
    ``on_progress`` sees every progress row besides the display, with the run folder's name (``RUN_FOLDER``: the
    folder a resumed run continues); ``on_policy = (every, fn)`` gets the policy
    every ``every`` env steps (e.g. to film it)."""
    algorithm = algorithms.for_config(config)
    with peers.losses_named(), training_run(algorithm, config, lineage, start, root) as run:
        def progress(row: dict[str, Any]) -> None:
            run.on_progress(row)
            if on_progress is not None:
                on_progress({**row, RUN_FOLDER: run.checkpoints.directory.name})

        result = run_training(config, state, scenarios_train, scenarios_eval, device_data, on_progress=progress,
                              on_checkpoint=run.on_checkpoint, resume=run.resume, on_policy=on_policy)
    if mesh.process_count() > 1:  # the processes agree if their lines show one hash
        logger.info("%s.train: final training state %s in process %d of %d", algorithm.name,
                    _fingerprint(result.state["training"]), mesh.process_index(), mesh.process_count())
    agent, history = run.outputs(result.history, result.curve, result.episodes)
    return TrainedAgent(agent, history, result.final_evaluation, scenario_weights(scenarios_train, result.curriculum))


def scenario_weights(scenarios_train: pd.DataFrame, curriculum: dict[str, Any] | None) -> pd.DataFrame:
    """The probability of drawing each training scenario at a reset when training ended (``weight``) and the
    return of the curriculum's last evaluation it came from (``return``; NaN before any, or without a curriculum,
    when the weights are uniform); a multi-seed run has a row per seed and scenario (``seed_index``)."""
    import numpy as np

    ids = scenarios_train["scenario_id"].to_numpy()
    if curriculum is None:
        return pd.DataFrame({"scenario_id": ids, "weight": np.full(len(ids), 1.0 / len(ids)),
                             "return": np.full(len(ids), np.nan)})
    weights, returns = np.asarray(curriculum["weights"], np.float64), np.asarray(curriculum["returns"], np.float64)
    if weights.ndim == 1:
        return pd.DataFrame({"scenario_id": ids, "weight": weights, "return": returns})
    seeds = weights.shape[0]
    return pd.DataFrame({"seed_index": np.repeat(np.arange(seeds, dtype=np.int64), len(ids)),
                         "scenario_id": np.tile(ids, seeds), "weight": weights.ravel(), "return": returns.ravel()})


def _fingerprint(tree: Any) -> str:
    """A short hash of this process's copy of a replicated state: equal in every process when they agree."""
    import hashlib

    import jax
    import numpy as np

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(mesh.host_copy(tree)):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class RunOutputs:
    """Everything a run produces, as the pipeline's datasets name them."""

    config: Any
    scenarios_train: pd.DataFrame
    scenarios_eval: pd.DataFrame
    lineage: dict[str, Any]
    trained: TrainedAgent
    policy: dict[str, Any]
    seed_policies: dict[str, bytes]
    eval_episodes: pd.DataFrame
    eval_summary: dict[str, Any]
    eval_seeds: pd.DataFrame


@dataclass
class Prepared:
    """A run up to its training: the scenario tables, the initial state, its lineage and the device data."""

    scenarios_train: pd.DataFrame
    scenarios_eval: pd.DataFrame
    state: Any
    lineage: dict[str, Any]
    device_data: Any


def prepare(config: Any, agent_store: Any = None, start: ResumePoint = ResumePoint()) -> Prepared:
    """The stages before training, in the pipeline's order: scenario tables, initial state (``train.init_from``
    from ``agent_store``), initial device data (none when ``start`` resumes)."""
    scenarios_train, scenarios_eval = scenario_tables(config)
    state, lineage = initial_state(config, agent_store)
    device_data = initial_device_data(config, scenarios_train, agent_store, lineage, start)
    return Prepared(scenarios_train, scenarios_eval, state, lineage, device_data)


def train_in_memory(config: Any, *, evaluate: bool = True, **callbacks: Any) -> Any:
    """A whole training run of a validated ``config`` as its pipeline runs it, without a run folder (no
    checkpoints unless ``on_checkpoint`` writes them; ``resume`` only if given): the training core's
    ``TrainResult``. With ``evaluate`` the policy is evaluated on the eval scenarios periodically and at the end.
    What a search's trials, tests and benchmarks run."""
    p = prepare(config)
    return run_training(config, p.state, p.scenarios_train, p.scenarios_eval if evaluate else None, p.device_data,
                        **callbacks)


def train(config: Any, *, agent_store: Any = None, root: str | os.PathLike | None = None,
          on_progress: Callable[[dict[str, Any]], None] | None = None,
          on_policy: tuple[int, Callable[[int, dict[str, Any]], None]] | None = None) -> RunOutputs:
    """A whole run of a validated ``config``, stage by stage as the algorithm's pipeline runs it: where it starts
    (``train.resume``: decided here, once), the stages before training (``prepare``), the training run (a run
    folder with checkpoints under ``root``), the exported policy and the evaluation tables."""
    start = find_resume(config, root)
    p = prepare(config, agent_store, start)
    trained = train_agent(config, p.state, p.lineage, start, p.scenarios_train, p.scenarios_eval, p.device_data,
                          root=root, on_progress=on_progress, on_policy=on_policy)
    policy = export_policy(config, trained.agent)
    seed_policies = export_seed_policies(config, trained.agent)
    episodes, summary, seeds = evaluation_tables(config, policy, p.scenarios_eval, trained.final_evaluation)
    return RunOutputs(config, p.scenarios_train, p.scenarios_eval, p.lineage, trained, policy, seed_policies,
                      episodes, summary, seeds)
