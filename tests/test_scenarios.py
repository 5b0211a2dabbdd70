import numpy as np
import pandas as pd
import pytest

from rlpipe.rl.envs import ScenarioError, generate_scenarios, make_env, scenarios_to_batch

RANGES = {"m": (0.5, 1.5), "l": (0.8, 1.2), "max_steps_in_episode": (100, 200)}


@pytest.fixture(scope="module")
def pendulum():
    return make_env("Pendulum-v1")


def test_parameters_within_ranges_and_defaults_elsewhere(pendulum):
    train, evaluation = generate_scenarios(pendulum, RANGES, 300, 100, seed=7)
    both = pd.concat([train, evaluation])
    for name, (low, high) in RANGES.items():
        assert both[name].between(low, high).all()
        assert both[name].nunique() > 10  # actually drawn, not constant
    assert (both["max_steps_in_episode"] == both["max_steps_in_episode"].round()).all()
    assert (both["g"] == pendulum.default_params.g).all()  # not ranged: nominal value
    assert len(train) == 300 and len(evaluation) == 100


def test_default_keeps_nominal_dynamics(pendulum):
    train, _ = generate_scenarios(pendulum, {}, 10, 5, seed=0)
    assert (train["m"] == 1.0).all() and (train["l"] == 1.0).all() and (train["max_steps_in_episode"] == 200).all()


def test_train_and_eval_are_disjoint(pendulum):
    train, evaluation = generate_scenarios(pendulum, {}, 2000, 500, seed=1)
    assert not set(train["reset_seed"]) & set(evaluation["reset_seed"])
    assert not set(train["scenario_id"]) & set(evaluation["scenario_id"])
    assert train["reset_seed"].is_unique and evaluation["reset_seed"].is_unique


def test_reproducible_from_seed(pendulum):
    a = generate_scenarios(pendulum, RANGES, 50, 20, seed=11)
    b = generate_scenarios(pendulum, RANGES, 50, 20, seed=11)
    c = generate_scenarios(pendulum, RANGES, 50, 20, seed=12)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[0].equals(c[0])


def test_table_becomes_batched_params(pendulum):
    train, _ = generate_scenarios(pendulum, RANGES, 6, 2, seed=0)
    batch = scenarios_to_batch(train, pendulum, "train.parquet")
    assert batch.size == 6
    np.testing.assert_allclose(batch.params.m, train["m"].to_numpy(), rtol=1e-6)
    assert batch.params.max_steps_in_episode.dtype == np.int32
    assert batch.reset_keys.shape == (6, 2)


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda t: t.drop(columns=["m"]), "missing column(s) m"),
        (lambda t: t.assign(l=["x"] * len(t)), "column 'l' must be numeric"),
        (lambda t: t.assign(g=[np.nan] + [10.0] * (len(t) - 1)), "column 'g' row 0"),
        (lambda t: t.assign(reset_seed=[-1] * len(t)), "column 'reset_seed' row 0"),
        (lambda t: t.assign(m=[1.0, -2.0, 1.0, 1.0]), "column 'm' row 1 is -2.0: must be > 0"),
        (lambda t: t.assign(scenario_id=[0, 1, 1, 2]), "row 2 is 1.0: a duplicate scenario id"),
        (lambda t: t.drop(columns=["scenario_id"]), "missing column(s) scenario_id"),
        (lambda t: t.assign(max_steps_in_episode=[100.5] * len(t)), "expected an integer"),
        (lambda t: t.iloc[:0], "no rows"),
    ],
)
def test_bad_scenario_table_names_file_and_column(pendulum, mutate, fragment):
    train, _ = generate_scenarios(pendulum, {}, 4, 1, seed=0)
    with pytest.raises(ScenarioError) as err:
        scenarios_to_batch(mutate(train), pendulum, "my_scenarios.parquet")
    assert str(err.value).startswith("my_scenarios.parquet:")
    assert fragment in str(err.value)
