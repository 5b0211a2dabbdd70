import copy

import pytest

from rlpipe.rl.algorithm import load_config
from rlpipe.rl.config import ConfigError, to_dict
from rlpipe.rl.sac.config import SACConfig


def load_sac_config(raw, num_devices):
    return load_config("sac", raw, num_devices)


def with_(path, value, base=None):
    """The default config as a dict, with one dotted key set."""
    raw = copy.deepcopy(base if base is not None else {})
    node = raw
    *parents, leaf = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return raw


def test_defaults_validate():
    cfg = load_sac_config({}, num_devices=1)
    assert cfg == SACConfig()
    assert cfg.train.num_envs == 8 and cfg.network.hidden_sizes == (64, 64)


def test_round_trip_through_plain_dict():
    cfg = load_sac_config(with_("scenarios.ranges", {"m": [0.5, 1.5]}), num_devices=1)
    assert load_sac_config(to_dict(cfg), num_devices=1) == cfg


@pytest.mark.parametrize(
    "path,value,key,fragment",
    [
        # wrong type
        ("train.batch_size", "abc", "sac.train.batch_size", "expected an integer"),
        ("train.batch_size", 12.5, "sac.train.batch_size", "expected an integer"),
        ("train.num_envs", True, "sac.train.num_envs", "expected an integer"),
        ("train.learning_rate", "fast", "sac.train.learning_rate", "expected a number"),
        ("network.hidden_sizes", 64, "sac.network.hidden_sizes", "expected a list"),
        ("network.hidden_sizes", [64, 0], "sac.network.hidden_sizes[1]", "must be >= 1"),
        ("env", "Pendulum-v1", "sac.env", "expected a mapping"),
        # out of range
        ("train.gamma", 1.5, "sac.train.gamma", "must be <= 1.0"),
        ("train.learning_rate", 0.0, "sac.train.learning_rate", "must be > 0.0"),
        ("train.learning_rate", float("nan"), "sac.train.learning_rate", "finite"),
        ("buffer.capacity", -1, "sac.buffer.capacity", "must be >= 1"),
        ("seed", -3, "sac.seed", "must be >= 0"),
        ("network.activation", "sigmoidish", "sac.network.activation", "is not one of"),
        # unknown key (with a suggestion)
        ("train.batchsize", 32, "sac.train.batchsize", "did you mean 'batch_size'"),
        ("optimizer", {}, "sac.optimizer", "unknown key"),
        # unknown / unsuitable environment
        ("env.id", "Pendullum-v1", "sac.env.id", "unknown environment"),
        ("env.id", "CartPole-v1", "sac.env.id", "discrete action space"),
        ("env.id", "no_such_module:Env", "sac.env.id", "cannot import module"),
        ("env.id", "rlpipe.rl.config:NotThere", "sac.env.id", "has no attribute"),
        # scenario ranges
        ("scenarios.ranges", {"mass": [1, 2]}, "sac.scenarios.ranges.mass", "has no parameter 'mass'"),
        ("scenarios.ranges", {"m": [2.0, 1.0]}, "sac.scenarios.ranges.m", "above high"),
        ("scenarios.ranges", {"m": [1.0]}, "sac.scenarios.ranges.m", "list of 2 values"),
        ("scenarios.ranges", {"max_steps_in_episode": [100.5, 200]}, "sac.scenarios.ranges.max_steps_in_episode",
         "integer parameter"),
        # cross-field constraints
        ("train.batch_size", 200_000, "sac.train.batch_size", "larger than sac.buffer.capacity"),
        ("buffer.prefill_steps", 200_000, "sac.buffer.prefill_steps", "larger than sac.buffer.capacity"),
        ("buffer.prefill_steps", 4, "sac.buffer.prefill_steps", "smaller than sac.train.num_envs"),
        ("train.total_env_steps", 500, "sac.train.total_env_steps", "leaves no training"),
        ("train.log_every_env_steps", 4, "sac.train.log_every_env_steps", "below one iteration"),
    ],
)
def test_bad_config_names_the_key(path, value, key, fragment):
    with pytest.raises(ConfigError) as err:
        load_sac_config(with_(path, value), num_devices=1)
    assert err.value.key == key
    assert fragment in str(err.value)
    assert str(err.value).startswith(key + ":")


@pytest.mark.parametrize("path,value", [("train.num_envs", 7), ("train.batch_size", 129), ("buffer.capacity", 1001)])
def test_sizes_must_split_evenly_over_devices(path, value):
    raw = with_(path, value)
    load_sac_config(raw, num_devices=1)  # fine on one device
    with pytest.raises(ConfigError, match="divisible by the number of devices") as err:
        load_sac_config(raw, num_devices=2)
    assert err.value.key == "sac." + path


def test_not_a_mapping_at_all():
    with pytest.raises(ConfigError) as err:
        load_sac_config([1, 2], num_devices=1)
    assert err.value.key == "sac"
