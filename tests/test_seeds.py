"""Many seeds in one run (issue 12): each seed exactly as its own one-seed run, aggregate statistics as rliable's,
and the pipelines' outputs for a multi-seed run."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from rlpipe.pipelines.training import generate_scenarios, init_agent
from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import eval_tables, mesh, statistics, training
from rlpipe.rl.envs import env_spec, scenarios_to_batch
from rlpipe.rl.seeds import stage_keys
from tests import reference_bits
from tests.conftest import TINY_SAC
from tests.support import lines_logged_by, run_pipeline
from tests.test_ppo import TINY_PPO


def _config(algo: str, base: dict, **train) -> object:
    params = {**base, "train": {**base["train"], **train}, "scenarios": {**base["scenarios"], "seed": 11}}
    params.setdefault("seed", 3)
    return algorithms.load_config(algo, params, mesh.device_count())


def _with_seed(config, seed: int, num_seeds: int):
    return config.model_copy(update={"seed": seed, "train": config.train.model_copy(update={"num_seeds": num_seeds})})


def _train(config):
    """The library's train stage for ``config`` (SAC with its prefill): the final state tree and evaluation."""
    algorithm = algorithms.for_config(config)
    spec = env_spec(config.env)
    train_table, eval_table = generate_scenarios(config)
    state, _ = init_agent(config, None)
    data = None
    if algorithm.name == "sac":
        from rlpipe.pipelines.training import prefill_buffer

        data = prefill_buffer(config, train_table, None, {})
    result = training.train(algorithm, config, spec, scenarios_to_batch(train_table, spec, "train"), state,
                            stage_keys(config, "train"), device_data=data,
                            eval_scenarios=scenarios_to_batch(eval_table, spec, "eval"))
    return state, result


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("algo,base", [("sac", TINY_SAC), ("ppo", TINY_PPO)])
@pytest.mark.slow
def test_seed_k_of_a_multi_seed_run_starts_as_the_one_seed_run_with_seed_plus_k(algo, base, capsys):
    """Seed k of a 4-seed run starts exactly as a 1-seed run with seed + k (same initial parameters, the first
    update equal to 1e-6), on the same scenarios."""
    seeds = 4
    steps = algorithms.get(algo).steps_per_iteration(_config(algo, base))[0]
    before = algorithms.get(algo).env_steps_before_training(_config(algo, base))
    one_step = dict(total_env_steps=before + steps, log_every_env_steps=steps, eval_every_env_steps=0)
    many = _config(algo, base, num_seeds=seeds, **one_step)
    many_init, many_run = _train(many)
    diffs = []
    for k in range(seeds):
        single = _with_seed(many, many.seed + k, 1)
        single_init, single_run = _train(single)
        init_k = jax.tree.map(lambda x: np.asarray(x)[k], many_init)
        assert _max_diff(init_k, single_init) == 0.0, f"seed {k}: initial state differs"
        after_k = jax.tree.map(lambda x: np.asarray(x)[k], many_run.state["training"])
        diffs.append(_max_diff(after_k, single_run.state["training"]))
        assert diffs[-1] <= 1e-6, f"seed {k}: after the first update the states differ by {diffs[-1]}"
        # the agents really differ from seed to seed
        if k:
            assert _max_diff(init_k, jax.tree.map(lambda x: np.asarray(x)[0], many_init)) > 0
    with capsys.disabled():
        print(f"\n{algo}: first-update differences per seed {['%.1e' % d for d in diffs]}")


@pytest.mark.parametrize("algo,base", [("sac", TINY_SAC), ("ppo", TINY_PPO)])
@pytest.mark.slow
def test_each_seed_of_a_multi_seed_run_ends_where_its_one_seed_run_ends(algo, base, capsys):
    """Over the whole (tiny) budget, seed k's final eval mean in the 4-seed run is that of its own one-seed run
    (seed + k), within a band of a tenth of the spread between the one-seed runs: a seed axis that mixed up the
    seeds' keys, states or evaluations would put a seed's return a seed-to-seed difference away (giving every seed
    the first seed's training key, on purpose, fails here)."""
    seeds = 4
    many = _config(algo, base, num_seeds=seeds)
    many_final = _train(many)[1].final_evaluation["returns"].mean(axis=1)
    single_final = np.asarray([_train(_with_seed(many, many.seed + k, 1))[1].final_evaluation["returns"].mean()
                               for k in range(seeds)])
    band = 0.1 * np.ptp(single_final)
    with capsys.disabled():
        print(f"\n{algo}: final eval means, 4-seed run {np.round(many_final, 2).tolist()} vs one-seed runs "
              f"{np.round(single_final, 2).tolist()} (band ±{band:.2f})")
    assert band > 0, "the one-seed runs all end alike: the band says nothing"
    off = np.abs(many_final - single_final)
    assert np.all(off <= band), f"seeds {np.flatnonzero(off > band).tolist()} end {off.round(2).tolist()} away"


@pytest.mark.parametrize("name", ["sac_1_seed", "ppo_1_seed", "sac_2_seeds"])
def test_training_keeps_the_stored_bits(name):
    """The final state, history, curve and final evaluation of tiny runs are bit for bit those stored in
    tests/data/one_seed_reference.json, in the entry of a machine like this one (jax, device count, CPU vector
    instructions: see ``tests/reference_bits.py``; each run names the commit whose code wrote it, the 2-seed run's
    is the code before the seeds refactor)."""
    here = reference_bits.environment()
    stored = reference_bits.stored_runs(here)
    if stored is None:
        pytest.skip(f"{reference_bits.REFERENCE.name} has no entry for {here}: the bits of this kind of machine "
                    "were never stored (see tests/reference_bits.py to add them)")
    expected = {k: v for k, v in stored[name].items() if k != "commit"}
    assert reference_bits.compute([name])[name] == expected


def _import_rliable(monkeypatch):
    """rliable 1.2.0 and arch 7.2.0 (the newest arch rliable allows): arch's import trips over pandas 3's
    ``deprecate_kwarg``, which now takes the warning class first. For the import, the old call form is mapped onto
    the new one (it only decorates arch's plotting helpers); the bootstrap code under comparison is untouched."""
    import pandas.util._decorators as decorators

    original = decorators.deprecate_kwarg

    def old_form(*args, **kwargs):
        return original(FutureWarning, *args, **kwargs) if args and isinstance(args[0], str) else \
            original(*args, **kwargs)

    monkeypatch.setattr(decorators, "deprecate_kwarg", old_form)
    library = pytest.importorskip("rliable.library")
    from rliable import metrics

    return library, metrics


def test_iqm_and_bootstrap_interval_match_rliable(monkeypatch):
    rliable, rly_metrics = _import_rliable(monkeypatch)

    scores = np.asarray([-151.2, -402.7, -130.9, -220.4, -98.3, -175.0, -310.6], np.float64)
    assert statistics.iqm(scores) == pytest.approx(float(rly_metrics.aggregate_iqm(scores[:, None])), abs=1e-9)
    for name, func in (("iqm", rly_metrics.aggregate_iqm), ("mean", rly_metrics.aggregate_mean)):
        np.random.seed(7)  # rliable draws from NumPy's global generator
        point, interval = rliable.get_interval_estimates({"x": scores[:, None]}, lambda x: np.array([func(x)]),
                                                         reps=2000)
        low, high = statistics.bootstrap_ci(scores, name, seed=7, reps=2000)
        assert low == pytest.approx(float(interval["x"][0, 0]), abs=1e-6)
        assert high == pytest.approx(float(interval["x"][1, 0]), abs=1e-6)
        assert low < float(point["x"][0]) < high


@pytest.mark.slow
def test_a_multi_seed_pipeline_run_aggregates_and_serves_the_best_seed(project, monkeypatch):
    params = {**TINY_SAC, "train": {**TINY_SAC["train"], "num_seeds": 3}}
    (project / "conf" / "local" / "parameters_sac.yml").write_text(yaml.safe_dump({"sac": params}))
    with lines_logged_by(eval_tables, monkeypatch) as lines:
        run_pipeline(project, "sac")
    assert lines.containing("evaluation of 3 seeds on 4 held-out scenarios: IQM")

    def latest(rel: str) -> Path:
        folder = project / rel
        return folder / sorted(p.name for p in folder.iterdir())[-1] / folder.name

    seeds = pd.read_parquet(latest("data/07_model_output/sac/eval_seeds.parquet"))
    episodes = pd.read_parquet(latest("data/07_model_output/sac/eval_episodes.parquet"))
    summary = json.loads(latest("data/07_model_output/sac/eval_summary.json").read_text())
    assert seeds["seed"].tolist() == [3, 4, 5] and len(episodes) == 3 * 4
    np.testing.assert_allclose(seeds["return_mean"], episodes.groupby("seed_index")["return"].mean(), rtol=1e-12)
    best = int(seeds["return_mean"].idxmax())
    assert seeds["served"].tolist() == [k == best for k in range(3)]
    assert summary["num_seeds"] == 3 and summary["best_seed_index"] == best
    assert summary["seeds.return_iqm"] == pytest.approx(statistics.iqm(seeds["return_mean"]))
    assert summary["seeds.return_iqm_ci_low"] <= summary["seeds.return_iqm"] <= summary["seeds.return_iqm_ci_high"]
    policy_meta = json.loads((latest("data/06_models/sac/policy") / "policy.json").read_text())
    assert policy_meta["seed_index"] == best and policy_meta["seed"] == 3 + best
    history = pd.read_parquet(latest("data/07_model_output/sac/training_history.parquet"))
    assert {f"seed{k}.episode_return" for k in range(3)} <= set(history.columns)
    last = history[[f"seed{k}.eval_return_mean" for k in range(3)]].iloc[-1].tolist()
    assert last == pytest.approx(seeds["return_mean"].tolist(), rel=1e-5)
    # every seed's policy is exported; the served one is the best seed's
    from rlpipe.rl.policies import read_policy, seed_policy

    folder = latest("data/06_models/sac/seed_policies")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    assert sorted(files) == sorted(f"seed{k}.{ext}" for k in range(3) for ext in ("json", "npz"))
    served = read_policy(latest("data/06_models/sac/policy"))
    for leaf_a, leaf_b in zip(jax.tree.leaves(seed_policy(files, best)["params"]), jax.tree.leaves(served["params"])):
        np.testing.assert_array_equal(leaf_a, leaf_b)
    assert seed_policy(files, 0)["meta"]["seed"] == 3
    # any seed of the stored agent can be evaluated again: the same episodes as in training's final evaluation
    run_pipeline(project, "sac_eval", {"evaluation": {"seed_index": 0}})  # in this process
    again = json.loads(latest("data/07_model_output/sac_eval/eval_summary.json").read_text())
    assert again["return_mean"] == pytest.approx(float(seeds["return_mean"][0]), rel=1e-6)
