"""What the host does to a run between compiled chunks, built once per run for the host loop
(``rlpipe.rl.loop.run``): the periodic evaluation of the deterministic policy, the curriculum's re-weighting, and the
delivery of the current policy (e.g. to film it). Each works for any number of seeds through ``rlpipe.rl.seeds``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlpipe.rl import curriculum, mesh, policies
from rlpipe.rl.acting import make_evaluator
from rlpipe.rl.algorithm import Algorithm
from rlpipe.rl.chunk import RunState
from rlpipe.rl.envs import EnvSpec, ScenarioBatch, max_episode_steps
from rlpipe.rl.seeds import Seeds


def evaluation_metrics(algorithm: Algorithm, config: Any, spec: EnvSpec) -> tuple[str, ...]:
    """The env metrics an evaluation reports: ``env.metrics`` and what the algorithm adds (multi-agent SAC: every
    agent's own reward, ``reward_<agent>``)."""
    names = list(config.env.metrics) + list(algorithm.evaluation_metrics(config, spec))
    return tuple(dict.fromkeys(names))


def _evaluator(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch, metrics):
    meta = algorithm.policy_meta(config, spec)
    return make_evaluator(spec, lambda p: policies.jax_policy({"meta": meta, "params": p}),
                          max_episode_steps(scenarios), metrics)


def _policy_params(algorithm: Algorithm, run: RunState) -> Any:
    """The deterministic policy's parameters of every seed, as host copies (one placement for the ahead-of-time
    compile and every later call)."""
    return mesh.host_copy(algorithm.policy_params(run.training))


def periodic_evaluation(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch):
    """``(evaluate(run) -> (returns, lengths, metrics), precompile(run))``: every seed's deterministic policy on
    ``scenarios``, and the evaluator's ahead-of-time compile (on the first seed's parameters)."""
    seeds = Seeds.of(config)
    evaluator = _evaluator(algorithm, config, spec, scenarios, evaluation_metrics(algorithm, config, spec))

    def evaluate(run: RunState) -> tuple:
        return seeds.evaluate(evaluator, _policy_params(algorithm, run), scenarios)

    def precompile(run: RunState) -> None:
        evaluator.precompile(seeds.each(_policy_params(algorithm, run))[0], scenarios)

    return evaluate, precompile


def curriculum_update(algorithm: Algorithm, config: Any, spec: EnvSpec, scenarios: ScenarioBatch):
    """``adapt(run) -> (run, logged)`` of the loop: the current deterministic policy (every seed's) run once on every
    training scenario by one compiled evaluator, the curriculum re-weighted from its returns (or its failures on
    ``scenarios.curriculum.metric``) in the replicated run state."""
    c = config.scenarios.curriculum
    seeds = Seeds.of(config)
    evaluator = _evaluator(algorithm, config, spec, scenarios, (c.metric,) if c.metric else ())
    final_metric = f"{c.metric}_final"

    def adapt(run: RunState) -> tuple[RunState, dict[str, float]]:
        returns, _, metrics = seeds.evaluate(evaluator, _policy_params(algorithm, run), scenarios)
        state, logged = curriculum.update(returns, metrics.get(final_metric) if c.metric else None, c)
        return run.replace(curriculum=mesh.put_replicated(state, seeds.groups)), logged

    return adapt


def policy_delivery(algorithm: Algorithm, config: Any, spec: EnvSpec,
                    deliver: Callable[[int, dict[str, Any]], None]) -> Callable[[int, RunState], None]:
    """``fn(env_steps, run)`` handing ``deliver`` the current deterministic policy as a bundle
    (``rlpipe.rl.policies``); of a multi-seed run, its first seed's."""
    seeds = Seeds.of(config)
    meta = algorithm.policy_meta(config, spec)

    def deliver_policy(env_steps: int, run: RunState) -> None:
        params, which = seeds.first_policy(_policy_params(algorithm, run))
        deliver(env_steps, {"meta": {**meta, **which, "env_steps": env_steps},
                            "params": policies.bundle_params(params)})

    return deliver_policy
