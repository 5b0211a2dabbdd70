"""Issue 15, curriculum: failing scenarios are drawn more often (a constructed env whose returns are known in advance),
the weights are the documented formula, and a run resumed from a mid-run checkpoint is bitwise the uninterrupted one."""

import copy

import jax
import numpy as np
import pytest
from flax import serialization

from rlpipe.rl import curriculum, mesh
from rlpipe.rl.config import ConfigError
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.envs.scenarios import draw
from rlpipe.rl.loop import Resume
from tests.support import setup, train

# Hurdle: a scenario's return is -10 x its hardness whatever the policy does; hardness uniform in [0, 1]
CURRICULUM_PPO = {
    "seed": 5,
    "env": {"id": "tests.scenario_envs:Hurdle"},
    "scenarios": {"num_train": 16, "num_eval": 4, "ranges": {"hardness": [0.0, 1.0]},
                  "curriculum": {"every_env_steps": 200, "temperature": 0.5, "floor": 0.1}},
    "network": {"hidden_sizes": [8]},
    "train": {"total_env_steps": 2000, "num_envs": 4, "num_steps": 10, "update_epochs": 1, "num_minibatches": 2,
              "log_every_env_steps": 200, "eval_every_env_steps": 0, "checkpoint_every_env_steps": 400},
    "early_stopping": {"target_return": None},
}


def test_weights_are_the_standardized_softmax_of_the_scores_mixed_with_the_floor():
    returns = np.array([-10.0, -20.0, -40.0, -10.0])
    # by hand: scores 10, 20, 40, 10 -> mean 20, std sqrt((100 + 0 + 400 + 100) / 4) = sqrt(150)
    z = np.array([-10.0, 0.0, 20.0, -10.0]) / np.sqrt(150.0)
    e = np.exp(z / 0.5)
    expected = 0.8 * e / e.sum() + 0.2 / 4
    np.testing.assert_allclose(curriculum.weights(-returns, temperature=0.5, floor=0.2), expected, rtol=1e-6)
    assert abs(expected.sum() - 1.0) < 1e-9
    np.testing.assert_allclose(curriculum.weights(np.ones(5), 1.0, 0.1), np.full(5, 0.2), rtol=1e-6)  # all equal
    np.testing.assert_allclose(curriculum.weights(-returns, 0.5, floor=1.0), np.full(4, 0.25), rtol=1e-6)
    # a success metric: the failures (1 - success) are the scores
    np.testing.assert_allclose(curriculum.scores(returns, np.array([1.0, 0.0, 1.0, 1.0])), [0, 1, 0, 0])
    assert curriculum.worst_decile(np.arange(20.0)) == 0.5  # the lowest 2 of 20
    assert curriculum.entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8))


def test_draws_follow_the_weights():
    spec = make_env("tests.scenario_envs:Hurdle")
    table, _ = generate_scenarios(spec, {"hardness": (0.0, 1.0)}, 4, 1, seed=0)
    batch = scenarios_to_batch(table, spec, "train").replace(weights=np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    counts = np.bincount(np.asarray(draw(batch, jax.random.PRNGKey(0), 100_000)), minlength=4) / 100_000
    np.testing.assert_allclose(counts, [0.1, 0.2, 0.3, 0.4], atol=0.01)


@pytest.mark.slow
def test_failing_scenarios_are_drawn_more_often():
    result, cfg = train("ppo", CURRICULUM_PPO, evaluate=False)
    uniform, _ = train("ppo", {**CURRICULUM_PPO, "scenarios": {**CURRICULUM_PPO["scenarios"], "curriculum": None}},
                       evaluate=False)
    _, _, _, train_batch, _ = setup("ppo", CURRICULUM_PPO)
    hardness = np.asarray(train_batch.params.hardness, np.float64)
    state = result.curriculum
    np.testing.assert_allclose(state["returns"], -10.0 * hardness, rtol=1e-5)  # each scenario evaluated once
    weights = np.asarray(state["weights"], np.float64)
    np.testing.assert_allclose(weights, curriculum.weights(10.0 * hardness, 0.5, 0.1), rtol=1e-5)
    order = np.argsort(hardness)
    assert np.all(np.diff(weights[order]) > 0)  # the harder (the more it fails), the likelier
    assert weights[order[-1]] > 4 * weights[order[0]] and weights.min() >= 0.1 / 16
    # the training episodes after the first re-weighting come from the failing scenarios far more often: their mean
    # return is the weighted one, not the uniform one (every episode's return is -10 x its scenario's hardness)
    rows = [r for r in result.history if r["env_steps"] > 200 and r["episodes"] > 0]
    trained = np.average([r["episode_return"] for r in rows], weights=[r["episodes"] for r in rows])
    base_rows = [r for r in uniform.history if r["env_steps"] > 200 and r["episodes"] > 0]
    base = np.average([r["episode_return"] for r in base_rows], weights=[r["episodes"] for r in base_rows])
    assert trained == pytest.approx(-10.0 * np.dot(weights, hardness), abs=0.6)
    assert base == pytest.approx(-10.0 * hardness.mean(), abs=0.6)
    assert trained < base - 1.5
    assert uniform.curriculum is None and "curriculum.entropy" not in uniform.history[-1]
    logged = [r for r in result.history if np.isfinite(r["curriculum.entropy"])]
    assert len(logged) == 9  # at 200, 400, ..., 1800 env steps (not after the last chunk)
    assert logged[-1]["curriculum.worst_decile_return"] == pytest.approx(-10.0 * np.sort(hardness)[-2:].mean(),
                                                                         rel=1e-5)
    assert logged[-1]["curriculum.entropy"] < np.log(16)


def test_resume_with_a_curriculum_is_bitwise_exact():
    taken = {}

    def keep(env_steps, tree, progress):  # the state as a checkpoint holds it, copied before the next chunk
        taken[env_steps] = (serialization.to_state_dict(mesh.host_copy(tree)), copy.deepcopy(progress))

    full, _ = train("ppo", CURRICULUM_PPO, evaluate=False, on_checkpoint=keep)
    tree, progress = taken[1200]
    assert "curriculum" in tree and np.isfinite(tree["curriculum"]["returns"]).all()
    resume = Resume(tree, jax.device_count(), progress["iteration"], 1200, progress["history"], None,
                    progress["curve"])
    rows = []  # what the resumed process itself trained: one progress row per chunk
    resumed, _ = train("ppo", CURRICULUM_PPO, evaluate=False, resume=resume, on_progress=rows.append)
    # it started at the checkpoint's step, not from 0: its first chunk ends one log interval after 1200 env steps,
    # and it ran only the chunks after the checkpoint
    assert [r["env_steps"] for r in rows] == [r["env_steps"] for r in full.history if r["env_steps"] > 1200]
    assert rows[0]["env_steps"] == 1200 + CURRICULUM_PPO["train"]["log_every_env_steps"]
    assert len(resumed.history) == len(full.history)
    for a, b in zip(jax.tree.leaves(mesh.host_copy(full.state)), jax.tree.leaves(mesh.host_copy(resumed.state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(full.curriculum["weights"], resumed.curriculum["weights"])
    assert [r["episode_return"] for r in full.history] == [r["episode_return"] for r in resumed.history]


@pytest.mark.parametrize("change,key", [
    ({"temperature": 0.0}, "ppo.scenarios.curriculum.temperature"),
    ({"floor": 1.5}, "ppo.scenarios.curriculum.floor"),
    ({"every_env_steps": 20}, "ppo.scenarios.curriculum.every_env_steps"),
    ({"metric": "is_success"}, "ppo.scenarios.curriculum.metric"),
    ({"tempreature": 1.0}, "ppo.scenarios.curriculum.tempreature"),
])
def test_bad_curriculum_settings_name_the_key(change, key):
    raw = copy.deepcopy(CURRICULUM_PPO)
    raw["scenarios"]["curriculum"].update(change)
    with pytest.raises(ConfigError) as error:
        setup("ppo", raw)
    assert error.value.key == key
