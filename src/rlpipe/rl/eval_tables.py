"""Evaluations and their tables: the scenarios to evaluate on (an agent's own held-out ones or fresh ones),
a policy run once on each, and the tables (per scenario, summary, and per seed of a multi-seed run with rliable's
aggregate statistics over the seeds' mean returns)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from rlpipe.rl.config import EvaluationConfig, check_evaluation, parse, registration_target
from rlpipe.rl.envs import env_spec
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.keys import scenario_seed
from rlpipe.rl.seeds import run_seeds

logger = logging.getLogger(__name__)


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


def evaluation_tables(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
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
                                     config.env.id, policy,
                                     {name: np.asarray(v).ravel() for name, v in metrics.items()}, log=False)
    stats = aggregate(means, seed=config.seed)
    summary.update(num_seeds=len(seeds), **{f"seeds.return_{k}": v for k, v in stats.items() if k != "runs"},
                   best_seed=int(seeds[best]), best_seed_index=best, best_seed_return_mean=float(means[best]))
    logger.info("evaluation of %d seeds on %d held-out scenarios: IQM of the seeds' mean returns %.1f (95%% CI "
                "%.1f to %.1f), mean %.1f (%.1f to %.1f); best seed %d: %.1f (the exported policy)", len(seeds),
                len(scenarios_eval), stats["iqm"], stats["iqm_ci_low"], stats["iqm_ci_high"], stats["mean"],
                stats["mean_ci_low"], stats["mean_ci_high"], seeds[best], means[best])
    return episodes, summary, _seed_table(summaries, seeds, best)


def eval_scenarios(config: Any, evaluation: dict[str, Any]) -> pd.DataFrame:
    """The scenarios to evaluate on: the agent's own eval scenarios (``evaluation.scenarios: stored``), or fresh
    ones from ``evaluation.seed`` (default: the agent's seed + 1) that share no reset seed with its training
    scenarios."""
    e = parse(EvaluationConfig, evaluation, "evaluation")
    s = config.scenarios
    spec = env_spec(config.env)
    train, table = sample_scenarios(spec, s.ranges, s.num_train, s.num_eval, scenario_seed(config))
    if e.scenarios == "fresh":
        seed = scenarios_seed(config, e)
        wanted = e.num_scenarios or s.num_eval
        _, table = sample_scenarios(spec, s.ranges, s.num_train, wanted + s.num_train, seed)
        table = without_reset_seeds(table, set(train["reset_seed"]), wanted)
    check_evaluation(e, len(table))
    return table


def without_reset_seeds(table: pd.DataFrame, taken: set, wanted: int) -> pd.DataFrame:
    """The first ``wanted`` rows of a scenario table whose reset seed is not in ``taken``, renumbered from 0."""
    table = table[~table["reset_seed"].isin(taken)].head(wanted).reset_index(drop=True)
    table["scenario_id"] = np.arange(len(table), dtype=np.int64)
    return table


def evaluate_policy(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
                    key: str = "scenarios_eval") -> tuple[pd.DataFrame, dict]:
    """Every scenario once with a deterministic policy bundle, by the program a training run's final evaluation
    runs (on an agent's own eval scenarios the summary is its training run's, exactly): per-scenario table and
    summary. ``key`` names the scenario table in errors."""
    from rlpipe.rl import algorithm as algorithms
    from rlpipe.rl.acting import make_evaluator
    from rlpipe.rl.envs import env_spec, max_episode_steps, scenarios_to_batch
    from rlpipe.rl.policies import jax_policy
    from rlpipe.rl.between_chunks import evaluation_metrics

    spec = env_spec(config.env)
    batch = scenarios_to_batch(scenarios_eval, spec, key)
    meta = policy["meta"]
    evaluator = make_evaluator(spec, lambda p: jax_policy({"meta": meta, "params": p}), max_episode_steps(batch),
                               evaluation_metrics(algorithms.for_config(config), config, spec))
    returns, lengths = evaluator(policy["params"], batch)
    return tabulate_evaluation(returns, lengths, scenarios_eval, config.env.id, policy, evaluator.last_metrics)


def scenarios_seed(config: Any, evaluation: EvaluationConfig) -> int:
    """The seed the evaluated scenarios are drawn from: the agent's own, or for fresh ones ``evaluation.seed``
    (default: the agent's seed + 1)."""
    if evaluation.scenarios == "stored":
        return scenario_seed(config)
    return scenario_seed(config) + 1 if evaluation.seed is None else evaluation.seed
