"""Stages every algorithm pipeline shares: config, scenarios, initial state, policy export and evaluation.

The algorithm is found through the registry (by name, or by its config's class): nothing here names one.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, policies
from rlpipe.rl.config import parse, registration_target
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.envs import env_spec
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.keys import scenario_seed, stage_key
from rlpipe.rl.seeds import num_seeds, run_seeds
from rlpipe.rl.training import inherit

logger = logging.getLogger(__name__)


def validated_config(algorithm: str, params: dict[str, Any], key: str | None = None) -> Any:
    """``params:<key>`` (by default ``params:<algorithm>``) as the algorithm's typed config; any bad key stops the
    run here, before any work."""
    config = algorithms.load_config(algorithm, params, mesh.device_count(), key)
    logger.info("%s on %s, seed %d, %d env steps, %d device(s) in %d process(es)", algorithm.upper(), config.env.id,
                config.seed, config.train.total_env_steps, mesh.device_count(), mesh.process_count())
    return config


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    s = config.scenarios
    return sample_scenarios(env_spec(config.env), s.ranges, s.num_train, s.num_eval, scenario_seed(config))


def init_agent(config: Any, agent_store: Any) -> tuple[Any, dict[str, Any]]:
    """The algorithm's fresh training state (networks, optimizers, counters), or with ``train.init_from`` one that
    starts from a stored agent's parameters (and, if asked, its optimizer state); and the run's lineage: the
    parent agent's version, or an empty dict."""
    algorithm = algorithms.for_config(config)
    spec = env_spec(config.env)
    if num_seeds(config) > 1:  # agent k exactly as a one-seed run with seed + k initializes (init_from is refused)
        from rlpipe.rl.seeds import stack_seeds

        return stack_seeds([algorithm.init_training_state(config, spec, stage_key(seed, "init"))
                            for seed in run_seeds(config)]), {}
    fresh = algorithm.init_training_state(config, spec, stage_key(config.seed, "init"))
    t = config.train
    if t.init_from is None:
        return fresh, {}
    key = f"{algorithm.name}.train.init_from"
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


def initial_device_data(algorithm: Any, config: Any, spec: Any, scenarios: Any) -> Any:
    """The train stage's extra input of an algorithm that has one (SAC's random-action prefill), drawn as its
    pipeline draws it, for every seed of the run; None for the others."""
    make = algorithm.initial_device_data
    if make is None:
        return None
    seeds = run_seeds(config)
    if len(seeds) == 1:
        return make(config, spec, scenarios, seeds[0])
    from rlpipe.rl.seeds import stack_seeds

    return stack_seeds([make(config, spec, scenarios, seed) for seed in seeds])


def policy_of_agent(agent: Any, key: str, seed_index: int | None = None) -> tuple[dict[str, Any], Any]:
    """A stored agent's deterministic policy bundle (built from its own config; the replay buffer is not read)
    and that config. ``key`` names the agent entry in errors. Of a multi-seed agent: seed ``seed_index``'s policy,
    by default the best seed's (the one exported and served)."""
    meta = agent["meta"]
    algorithm = algorithms.get(meta["algorithm"])
    agent_config = parse(algorithm.config_class, meta["config"], f"{key}.meta.config")
    training = agent.part("training") if hasattr(agent, "part") else agent["state"]["training"]
    policy_meta = algorithm.policy_meta(agent_config, env_spec(agent_config.env))
    seeds = num_seeds(agent_config)
    if seed_index is not None and not 0 <= seed_index < seeds:
        raise ConfigError("evaluation.seed_index", f"{seed_index}: the agent has seeds 0..{seeds - 1}")
    if seeds > 1:
        best, by = best_seed(meta, seeds) if seed_index is None else (seed_index, "asked for")
        training = jax.tree.map(lambda x: np.asarray(x)[best], training)
        policy_meta.update(seed_index=best, seed=agent_config.seed + best, num_seeds=seeds, selected_by=by)
    return {"meta": {**policy_meta, "env_steps": int(meta["env_steps"])},
            "params": policies.bundle_params(algorithm.policy_params(training))}, agent_config


def export_seed_policies(config: Any, agent: Any) -> dict[str, bytes]:
    """Every seed's policy bundle (``seed<k>/policy.json`` and ``params.npz`` flattened to ``seed<k>.json`` and
    ``seed<k>.npz``; ``rlpipe.rl.policies.seed_policy`` reads one back). One seed: ``seed0`` only."""
    name = algorithms.for_config(config).name
    files = {}
    for k in range(num_seeds(config)):
        policy, _ = policy_of_agent(agent, f"{name}.agent", k if num_seeds(config) > 1 else None)
        files.update(policies.bundle_files(policy, f"seed{k}"))
    return files


def parent_part(parent: Any, part: str) -> Any:
    """A stored agent's ``training`` or ``device`` part; of a multi-seed agent, its best seed's (the served one)."""
    tree = parent.part(part)
    seeds = int(((parent["meta"].get("config") or {}).get("train") or {}).get("num_seeds", 1))
    if seeds == 1:
        return tree
    best, _ = best_seed(parent["meta"], seeds)
    return jax.tree.map(lambda x: np.asarray(x)[best], tree)


def best_seed(meta: dict[str, Any], seeds: int) -> tuple[int, str]:
    """The index of a multi-seed agent's best seed by its last evaluation (the final one, taken before the final
    checkpoint), and how it was chosen."""
    history = (meta.get("progress") or {}).get("history") or []
    means = np.asarray([float(history[-1].get(f"seed{k}.eval_return_mean", np.nan)) if history else np.nan
                        for k in range(seeds)])
    if not np.isfinite(means).any():
        return 0, "seed 0: no evaluation recorded"
    best = int(np.nanargmax(means))
    return best, f"best mean eval return of {seeds} seeds at {int(history[-1]['env_steps'])} env steps"


def export_policy(config: Any, agent: Any) -> dict[str, Any]:
    """The deterministic policy alone, self-described (``rlpipe.rl.policies``), for evaluation, serving (MLflow
    model) and inspection. Reads only the agent's training state, never its buffers."""
    policy, _ = policy_of_agent(agent, f"{algorithms.for_config(config).name}.agent")
    policy["meta"].update(registered_model_name=config.tracking.registered_model_name,
                          register=config.tracking.register, target_return=registration_target(config))
    return policy


def tabulate_evaluation(returns: Any, lengths: Any, scenarios_eval: pd.DataFrame, env_id: str,
                        policy: dict[str, Any], metrics: dict[str, Any] | None = None,
                        log: bool = True) -> tuple[pd.DataFrame, dict]:
    """Per-scenario table and summary of one deterministic episode per eval scenario. The env's own metrics
    (``env.metrics``: per scenario the episode mean ``<name>`` and last value ``<name>_final``) become columns
    ``env.<key>`` and, averaged over the scenarios (a rate, for booleans), summary entries of the same names."""
    if len(returns) != len(scenarios_eval):
        raise ValueError(f"the evaluation has {len(returns)} episodes but scenarios_eval {len(scenarios_eval)}")
    episodes = pd.DataFrame({"scenario_id": scenarios_eval["scenario_id"].to_numpy(), "return": returns,
                             "length": lengths})
    summary = {**summarize_returns(returns, lengths), "env_id": env_id,
               "algorithm": policy["meta"]["algorithm"], "agent_env_steps": int(policy["meta"].get("env_steps", -1))}
    for name, values in (metrics or {}).items():
        episodes[f"env.{name}"] = np.asarray(values, np.float64)
        summary[f"env.{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        if name.startswith("reward_") and not name.endswith("_final"):  # an agent's own reward: its return
            agent_return = np.asarray(values, np.float64) * np.asarray(lengths, np.float64)
            episodes[f"return_{name.removeprefix('reward_')}"] = agent_return
            summary[f"return_{name.removeprefix('reward_')}"] = float(np.mean(agent_return))
    if log:
        logger.info("evaluation on %d held-out scenarios: mean return %.1f +- %.1f (min %.1f, max %.1f)%s",
                    summary["num_episodes"], summary["return_mean"], summary["return_std"], summary["return_min"],
                    summary["return_max"], "".join(f", {k} {summary[k]:.3g}" for k in summary if k.startswith("env.")))
    return episodes, summary


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
             final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Every eval scenario once with the deterministic policy: per-scenario table, summary and per-seed table.

    The episodes were run at the end of training by the same compiled program the policy bundle builds
    (``final_evaluation``), so they are not run twice; this stage checks they belong to this policy and tabulates.
    A multi-seed run's table has every seed's episodes (columns ``seed_index``, ``seed``); its summary describes
    them all, with the aggregate over the seeds' mean returns (mean, IQM and their 95% stratified bootstrap
    intervals, rliable's definitions) and the best seed, whose policy is the one exported and served.
    """
    returns = np.asarray(final_evaluation["returns"])
    if returns.ndim == 1:
        episodes, summary = tabulate_evaluation(returns, final_evaluation["lengths"], scenarios_eval, config.env.id,
                                                policy, final_evaluation.get("metrics"))
        seeds = _seed_table([summary], [config.seed], 0)
        served = summary["return_mean"]
    else:
        episodes, summary, seeds = _evaluate_seeds(config, policy, scenarios_eval, final_evaluation)
        served = summary["best_seed_return_mean"]
    target = registration_target(config)
    if target is not None:  # the served policy's (a multi-seed run's best seed)
        summary.update(target_return=target, target_met=bool(served >= target))
    return episodes, summary, seeds


def _seed_table(summaries: list[dict], seeds: list[int], best: int) -> pd.DataFrame:
    columns = ["return_mean", "return_std", "return_min", "return_median", "return_max", "length_mean"]
    table = pd.DataFrame({"seed_index": np.arange(len(seeds), dtype=np.int64), "seed": np.asarray(seeds, np.int64),
                          **{c: [float(s[c]) for s in summaries] for c in columns}})
    for name in [k for k in summaries[0] if k.startswith("env.")]:
        table[name] = [float(s[name]) for s in summaries]
    table["served"] = table["seed_index"] == best
    return table


def _evaluate_seeds(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
                    final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    from rlpipe.rl.statistics import aggregate

    returns, lengths = np.asarray(final_evaluation["returns"]), np.asarray(final_evaluation["lengths"])
    metrics = final_evaluation.get("metrics") or {}
    seeds = run_seeds(config)
    tables, summaries = [], []
    for k, seed in enumerate(seeds):
        table, summary = tabulate_evaluation(returns[k], lengths[k], scenarios_eval, config.env.id, policy,
                                             {name: np.asarray(v)[k] for name, v in metrics.items()}, log=False)
        table.insert(0, "seed", np.int64(seed))
        table.insert(0, "seed_index", np.int64(k))
        tables.append(table)
        summaries.append(summary)
    means = np.asarray([s["return_mean"] for s in summaries])
    best = int(policy["meta"].get("seed_index", int(np.argmax(means))))
    episodes = pd.concat(tables, ignore_index=True)
    _, summary = tabulate_evaluation(returns.ravel(), lengths.ravel(), pd.concat([scenarios_eval] * len(seeds)),
                                     config.env.id, policy, {name: np.asarray(v).ravel() for name, v in metrics.items()},
                                     log=False)
    stats = aggregate(means, seed=config.seed)
    summary.update(num_seeds=len(seeds), **{f"seeds.return_{k}": v for k, v in stats.items() if k != "runs"},
                   best_seed=int(seeds[best]), best_seed_index=best, best_seed_return_mean=float(means[best]))
    logger.info("evaluation of %d seeds on %d held-out scenarios: IQM of the seeds' mean returns %.1f (95%% CI "
                "%.1f to %.1f), mean %.1f (%.1f to %.1f); best seed %d: %.1f (the exported policy)", len(seeds),
                len(scenarios_eval), stats["iqm"], stats["iqm_ci_low"], stats["iqm_ci_high"], stats["mean"],
                stats["mean_ci_low"], stats["mean_ci_high"], seeds[best], means[best])
    return episodes, summary, _seed_table(summaries, seeds, best)


def algorithm_pipeline(algorithm: str, specific: list[Node], namespace: str | None = None,
                       inputs: set[str] | None = None, check: Any = None) -> Pipeline:
    """An algorithm's pipeline in ``namespace`` (default: the algorithm's name; its parameters are
    ``params:<namespace>``): the shared head (config, scenarios, initial state), the algorithm's own nodes (which
    must produce ``agent``, ``training_history`` and ``final_evaluation``), the shared export, evaluation and
    reporting. ``inputs``: datasets from outside the namespace; ``check(config, key)``: the pipeline's own rules on
    the config, run in its load_config node."""
    from rlpipe.stages.reporting import reporting_pipeline

    namespace = namespace or algorithm

    def load_config(params: dict[str, Any]) -> Any:
        """Validate the algorithm's parameters; any bad key stops the run here, before any work."""
        config = validated_config(algorithm, params, namespace)
        if check is not None:
            check(config, namespace)
        return config

    head = [
        Node(load_config, f"params:{namespace}", "config", name="load_config"),
        Node(generate_scenarios, "config", ["scenarios_train", "scenarios_eval"], name="generate_scenarios"),
        Node(init_agent, ["config", "agent_store"], ["initial_state", "lineage"], name="init_agent"),
    ]
    tail = [
        Node(export_policy, ["config", "agent"], "policy", name="export_policy"),
        Node(export_seed_policies, ["config", "agent"], "seed_policies", name="export_seed_policies"),
        Node(evaluate, ["config", "policy", "scenarios_eval", "final_evaluation"],
             ["eval_episodes", "eval_summary", "eval_seeds"], name="evaluate"),
    ]
    return Pipeline(Pipeline(head + specific + tail) + reporting_pipeline(), namespace=namespace,
                    parameters={f"params:{namespace}"}, inputs=inputs, prefix_datasets_with_namespace=True)
