import copy
import json
import subprocess
import sys

import pytest

from rlpipe.rl import config as shared
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.config import ConfigError, parse, to_dict
from rlpipe.rl.ppo.config import PPOConfig
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
        ("network.init", "xavier", "sac.network.init", "is not one of"),
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


# ------------------------------------------------------------------ pydantic errors in rlpipe's words (no jax needed)
def problem(cls, raw, key="sac"):
    with pytest.raises(ConfigError) as err:
        parse(cls, raw, key)
    assert str(err.value) == f"{err.value.key}: {err.value.problem}"
    return err.value.key, err.value.problem


ALLOWED_NETWORK = "allowed keys: hidden_sizes, activation, module, kwargs, actor, critic, init"


@pytest.mark.parametrize(
    "raw,key,message",
    [
        # unknown keys, with a suggestion when one is close
        ({"train": {"batchsize": 32}}, "sac.train.batchsize", "unknown key (did you mean 'batch_size'?); allowed keys: "
                                                              "total_env_steps, num_envs, "),
        ({"network": {"activaton": "relu"}}, "sac.network.activaton",
         f"unknown key (did you mean 'activation'?); {ALLOWED_NETWORK}"),
        ({"network": {"zzz": 1}}, "sac.network.zzz", f"unknown key; {ALLOWED_NETWORK}"),
        ({"network": {7: 1}}, "sac.network.7", f"unknown key; {ALLOWED_NETWORK}"),
        # wrong type; a bool is never a number, a string never a number
        ({"train": {"batch_size": "5"}}, "sac.train.batch_size", "expected an integer, got '5' (str)"),
        ({"train": {"batch_size": 12.0}}, "sac.train.batch_size", "expected an integer, got 12.0 (float)"),
        ({"train": {"num_envs": True}}, "sac.train.num_envs", "expected an integer, got True (bool)"),
        ({"train": {"gamma": False}}, "sac.train.gamma", "expected a number, got False (bool)"),
        ({"train": {"gamma": "0.9"}}, "sac.train.gamma", "expected a number, got '0.9' (str)"),
        ({"train": {"resume": 1}}, "sac.train.resume", "expected true, false or 'auto', got 1 (int)"),
        ({"train": {"resume": "yes"}}, "sac.train.resume", "expected true, false or 'auto', got 'yes' (str)"),
        ({"train": {"checkpoint_dir": ""}}, "sac.train.checkpoint_dir", "expected a non-empty string, got '' (str)"),
        ({"env": {"id": 3}}, "sac.env.id", "expected a non-empty string, got 3 (int)"),
        ({"seed": None}, "sac.seed", "expected an integer, got None (NoneType)"),  # None only where Optional
        ({"env": "Pendulum-v1"}, "sac.env", "expected a mapping of settings, got 'Pendulum-v1' (str)"),
        ({"scenarios": {"ranges": [1, 2]}}, "sac.scenarios.ranges", "expected a mapping, got [1, 2] (list)"),
        # out of range (ints are numbers: converted before the bound is shown)
        ({"buffer": {"capacity": 0}}, "sac.buffer.capacity", "0 is out of range: must be >= 1"),
        ({"buffer": {"capacity": 2**31}}, "sac.buffer.capacity", "2147483648 is out of range: must be <= 2147483647"),
        ({"seed": 2**31}, "sac.seed", "2147483648 is out of range: must be < 2147483648"),
        ({"train": {"learning_rate": 0}}, "sac.train.learning_rate", "0.0 is out of range: must be > 0.0"),
        ({"train": {"gamma": 2}}, "sac.train.gamma", "2.0 is out of range: must be <= 1.0"),
        # non-finite numbers
        ({"train": {"tau": float("inf")}}, "sac.train.tau", "expected a finite number, got inf"),
        ({"train": {"target_entropy": float("-inf")}}, "sac.train.target_entropy",
         "expected a finite number, got -inf"),
        ({"train": {"learning_rate": float("nan")}}, "sac.train.learning_rate", "expected a finite number, got nan"),
        # choices
        ({"network": {"activation": "sigmoid"}}, "sac.network.activation",
         "'sigmoid' is not one of 'relu', 'tanh', 'gelu', 'silu'"),
        ({"network": {"activation": 1}}, "sac.network.activation", "expected a non-empty string, got 1 (int)"),
        ({"tracking": {"register": "never"}}, "sac.tracking.register", "'never' is not one of 'always', 'on_target'"),
        # lists
        ({"network": {"hidden_sizes": 64}}, "sac.network.hidden_sizes", "expected a list, got 64 (int)"),
        ({"network": {"hidden_sizes": "64"}}, "sac.network.hidden_sizes", "expected a list, got '64' (str)"),
        ({"network": {"hidden_sizes": {"a": 1}}}, "sac.network.hidden_sizes", "expected a list, got {'a': 1} (dict)"),
        ({"network": {"hidden_sizes": []}}, "sac.network.hidden_sizes", "expected a non-empty list"),
        ({"network": {"hidden_sizes": [64, 0]}}, "sac.network.hidden_sizes[1]", "0 is out of range: must be >= 1"),
        ({"network": {"hidden_sizes": [2**16 + 1]}}, "sac.network.hidden_sizes[0]",
         "65537 is out of range: must be <= 65536"),
        ({"network": {"hidden_sizes": [64, True]}}, "sac.network.hidden_sizes[1]",
         "expected an integer, got True (bool)"),
        ({"scenarios": {"ranges": {"m": [1.0]}}}, "sac.scenarios.ranges.m", "expected a list of 2 values, got 1"),
        ({"scenarios": {"ranges": {"m": [1, 2, 3]}}}, "sac.scenarios.ranges.m", "expected a list of 2 values, got 3"),
        ({"scenarios": {"ranges": {"m": "1,2"}}}, "sac.scenarios.ranges.m", "expected a list, got '1,2' (str)"),
        ({"scenarios": {"ranges": {"m": [1, "x"]}}}, "sac.scenarios.ranges.m[1]", "expected a number, got 'x' (str)"),
    ],
)
def test_each_kind_of_error_in_rlpipe_words(raw, key, message):
    got_key, got_problem = problem(SACConfig, raw)
    assert got_key == key
    assert got_problem.startswith(message) if message.endswith(", ") else got_problem == message


def test_a_sections_unknown_keys_come_first_and_keys_in_order():
    """As a depth-first walk meets them: a section's unknown keys before its fields' errors, fields in order."""
    assert problem(SACConfig, {"train": {"batch_size": "x"}, "optimizer": {}})[0] == "sac.optimizer"
    assert problem(SACConfig, {"train": {"batch_size": "x", "lr_typo": 1}})[0] == "sac.train.lr_typo"
    assert problem(SACConfig, {"seed": -1, "train": {"lr_typo": 1}})[0] == "sac.seed"
    assert problem(SACConfig, {"network": {"hidden_sizes": [0, 0]}, "buffer": {"capacity": 0}})[0] == (
        "sac.network.hidden_sizes[0]")


def test_not_a_mapping_or_nothing_at_all():
    assert problem(SACConfig, "sac") == ("sac", "expected a mapping of settings, got 'sac' (str)")
    assert parse(SACConfig, None, "sac") == parse(SACConfig, {}, "sac") == SACConfig()


def test_conversions_and_none():
    cfg = parse(SACConfig, {"train": {"learning_rate": 1, "target_entropy": None},
                            "network": {"hidden_sizes": [32]}, "scenarios": {"ranges": {"m": [1, 2]}},
                            "tracking": {"registered_model_name": None}}, "sac")
    assert cfg.train.learning_rate == 1.0 and type(cfg.train.learning_rate) is float
    assert cfg.network.hidden_sizes == (32,)
    assert cfg.scenarios.ranges == {"m": (1.0, 2.0)} and type(cfg.scenarios.ranges["m"][0]) is float
    assert cfg.tracking.registered_model_name is None
    assert parse(SACConfig, {"train": None, "tracking": None}, "sac") == SACConfig()  # a null section: defaults


def test_a_partial_section_keeps_the_defaults_its_parent_declares():
    cfg = parse(PPOConfig, {"tracking": {"tensorboard": False}, "network": {"hidden_sizes": [8]}, "env": None}, "ppo")
    assert cfg.tracking.registered_model_name == "rlpipe-ppo"
    assert cfg.network.activation == "tanh" and cfg.network.hidden_sizes == (8,)
    assert cfg.env.id == "CartPole-v1"
    assert parse(PPOConfig, {"network": {"activation": "relu"}}, "ppo").network.activation == "relu"


def test_configs_are_immutable_and_plain_dicts_are_json_ready():
    cfg = SACConfig()
    with pytest.raises(Exception):
        cfg.seed = 1
    with pytest.raises(Exception):
        cfg.train.num_envs = 2
    plain = to_dict(cfg)
    assert plain["network"]["hidden_sizes"] == [64, 64] and plain["train"]["init_from"] is None
    assert json.loads(json.dumps(plain)) == plain
    assert hash(cfg.train) == hash(SACConfig().train)


def test_config_import_does_not_import_jax():
    code = ("import sys, time; t = time.perf_counter(); import rlpipe.rl.sac.config, rlpipe.rl.ppo.config, "
            "rlpipe.rl.algorithm, rlpipe.schemas; assert 'jax' not in sys.modules, 'jax imported'; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 2.0  # pydantic and the models: about 0.15 s


# ---------------------------------------------------------------------------------------------------- new keys
def test_new_keys_and_their_defaults():
    t, tr = SACConfig().train, SACConfig().tracking
    assert (t.init_from, t.init_from_optimizer, t.init_from_buffer) == (None, False, False)
    assert (tr.video_every_env_steps, tr.register, tr.target_return, tr.system_metrics) == (0, "always", None, True)
    assert problem(SACConfig, {"train": {"init_from": ""}})[0] == "sac.train.init_from"
    assert problem(SACConfig, {"tracking": {"video_every_env_steps": -1}}) == (
        "sac.tracking.video_every_env_steps", "-1 is out of range: must be >= 0")
    assert problem(SACConfig, {"tracking": {"system_metrics": "on"}})[0] == "sac.tracking.system_metrics"
    cfg = load_sac_config({"train": {"init_from": "latest", "init_from_optimizer": True, "init_from_buffer": True},
                           "tracking": {"register": "on_target", "target_return": -200}}, num_devices=1)
    assert cfg.train.init_from == "latest" and cfg.tracking.target_return == -200.0


@pytest.mark.parametrize(
    "algo,raw,key,fragment",
    [
        ("sac", {"train": {"init_from_optimizer": True}}, "sac.train.init_from_optimizer", "needs train.init_from"),
        ("sac", {"train": {"init_from_buffer": True}}, "sac.train.init_from_buffer", "needs train.init_from"),
        ("ppo", {"train": {"init_from_optimizer": True}}, "ppo.train.init_from_optimizer", "needs train.init_from"),
        # SAC's own key: PPO's train section has none (an unknown key, reported before any rule)
        ("ppo", {"train": {"init_from": "latest", "init_from_buffer": True}}, "ppo.train.init_from_buffer",
         "unknown key"),
        ("ppo", {"train": {"init_from_buffer": True}}, "ppo.train.init_from_buffer", "unknown key"),
        ("sac", {"train": {"init_from": "latest", "resume": True}}, "sac.train.init_from",
         "a resumed run continues its own checkpoint; init_from starts a new run from another agent"),
        ("ppo", {"train": {"init_from": "2024-05-01T10.00.00.000Z", "resume": True}}, "ppo.train.init_from",
         "set one of them"),
        ("sac", {"tracking": {"register": "on_target"}}, "sac.tracking.register", "needs a target return"),
        ("ppo", {"tracking": {"register": "on_target"}, "early_stopping": {"target_return": None}},
         "ppo.tracking.register", "early_stopping.target_return"),
    ],
)
def test_new_keys_rules(algo, raw, key, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(algo, raw, num_devices=1)
    assert err.value.key == key
    assert fragment in err.value.problem


def test_on_target_takes_early_stopping_target_where_there_is_one():
    assert load_config("ppo", {"tracking": {"register": "on_target"}}, num_devices=1).tracking.register == "on_target"
    cfg = load_config("ppo", {"tracking": {"register": "on_target", "target_return": 400},
                              "early_stopping": {"target_return": None}}, num_devices=1)
    assert cfg.tracking.target_return == 400.0
    assert load_config("ppo", {"train": {"init_from": "latest", "init_from_optimizer": True}},
                       num_devices=1).train.init_from_optimizer


def test_evaluation_section():
    ev = parse(shared.EvaluationConfig, None, "evaluation")
    assert (ev.scenarios, ev.seed, ev.num_scenarios, ev.animation, ev.animation_scenario) == ("stored", None, None,
                                                                                               True, 0)
    ev = parse(shared.EvaluationConfig, {"scenarios": "fresh", "seed": 7, "num_scenarios": 16}, "evaluation")
    assert (ev.scenarios, ev.seed, ev.num_scenarios) == ("fresh", 7, 16)
    for raw, key, message in [
        ({"scenarios": "new"}, "evaluation.scenarios", "'new' is not one of 'stored', 'fresh'"),
        ({"seed": -1}, "evaluation.seed", "-1 is out of range: must be >= 0"),
        ({"seed": 2**31}, "evaluation.seed", "2147483648 is out of range: must be < 2147483648"),
        ({"seed": True}, "evaluation.seed", "expected an integer, got True (bool)"),
        ({"num_scenarios": 0}, "evaluation.num_scenarios", "0 is out of range: must be >= 1"),
        ({"animation": None}, "evaluation.animation", "expected true or false, got None (NoneType)"),
        ({"animation_scenario": -1}, "evaluation.animation_scenario", "-1 is out of range: must be >= 0"),
        ({"num_scenario": 3}, "evaluation.num_scenario", "unknown key (did you mean 'num_scenarios'?)"),
    ]:
        got_key, got_problem = problem(shared.EvaluationConfig, raw, "evaluation")
        assert got_key == key and got_problem.startswith(message), (raw, got_key, got_problem)


def test_evaluation_rules():
    ok = parse(shared.EvaluationConfig, {"scenarios": "fresh", "seed": 1, "animation_scenario": 3}, "evaluation")
    shared.check_evaluation(ok, num_scenarios=4)
    with pytest.raises(ConfigError, match="not a row of the 3 evaluated scenarios") as err:
        shared.check_evaluation(ok, num_scenarios=3)
    assert err.value.key == "evaluation.animation_scenario"
    shared.check_evaluation(ok.model_copy(update={"animation": False}), num_scenarios=3)  # no animation: no row
    stored_with_seed = parse(shared.EvaluationConfig, {"seed": 1}, "evaluation")
    with pytest.raises(ConfigError, match="applies to fresh scenarios only") as err:
        shared.check_evaluation(stored_with_seed, num_scenarios=64)
    assert err.value.key == "evaluation.seed"


def test_distributed_section_still_validates():
    assert parse(shared.DistributedConfig, None, "distributed").heartbeat_timeout_seconds == 15
    assert problem(shared.DistributedConfig, {"heartbeat_timeout_seconds": 1}, "distributed") == (
        "distributed.heartbeat_timeout_seconds", "1 is out of range: must be >= 2")
    assert problem(shared.DistributedConfig, {"process_id": "0"}, "distributed")[0] == "distributed.process_id"


# ------------------------------------------------------------------------------ the package: one home per job
def test_init_from_buffer_is_sacs_own_key():
    """Generic sections name no algorithm: the buffer is SAC's (and masac's, built on SAC's train section)."""
    from rlpipe.rl.masac.config import MASACConfig

    assert "init_from_buffer" not in shared.LoopConfig.model_fields
    assert "init_from_buffer" not in type(PPOConfig().train).model_fields
    assert SACConfig().train.init_from_buffer is False and MASACConfig().train.init_from_buffer is False
    key, message = problem(PPOConfig, {"train": {"init_from_buffer": True}}, "ppo")
    assert key == "ppo.train.init_from_buffer"
    assert message.startswith("unknown key") and "allowed keys: total_env_steps, " in message
    assert "\n" not in message  # one line under the block's heading


def test_a_stored_ppo_config_from_before_still_loads():
    """PPO agents stored while every train section had ``init_from_buffer`` carry ``false``: that (and only that)
    value of the retired key is dropped, so ``ppo_eval`` still reads them; ``true`` stays an unknown key."""
    stored = to_dict(PPOConfig())
    stored["train"]["init_from_buffer"] = False
    assert parse(PPOConfig, stored, "ppo.agent.meta.config") == PPOConfig()
    for value in (True, 0, None):
        stored["train"]["init_from_buffer"] = value
        assert problem(PPOConfig, stored, "ppo")[0] == "ppo.train.init_from_buffer"
    assert problem(SACConfig, {"buffer": {"init_from_buffer": False}})[0] == "sac.buffer.init_from_buffer"


def test_a_discrete_multi_agent_env_is_refused_outside_masac():
    """The env registry's check (not the generic rules) refuses a single-agent algorithm a JaxMARL env with
    discrete actions, naming the masac pipeline."""
    pytest.importorskip("jaxmarl")
    discrete = {"id": "jaxmarl:MPE_simple_spread_v3", "kwargs": {"action_type": "Discrete"}}
    with pytest.raises(ConfigError) as err:
        load_config("ppo", {"env": discrete}, num_devices=1)
    assert err.value.key == "ppo.env.id"
    assert err.value.problem == ("'jaxmarl:MPE_simple_spread_v3' is a multi-agent env with discrete actions: train "
                                 "it with the masac pipeline (or give it continuous actions, e.g. MPE tasks' "
                                 "env.kwargs {action_type: Continuous})")
    assert load_config("masac", {"env": discrete}, num_devices=1).env.kwargs == {"action_type": "Discrete"}


def code_words(source):
    """Identifiers and string constants of ``source``: what its code says, without its docstrings and comments."""
    import ast

    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    docstrings |= {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "doc"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_the_config_package_is_split_by_job_names_no_algorithm_and_reexports_every_name():
    import inspect

    from rlpipe.rl import config
    from rlpipe.rl.config import fields, messages, rules, sections

    for name in config.__all__:
        assert hasattr(config, name), name
    assert config.spec is fields.spec and config.parse is messages.parse
    assert config.LoopConfig is sections.LoopConfig and config.check_common is rules.check_common
    for module in (config, fields, sections, messages, rules):
        source = inspect.getsource(module)
        assert source.count("\n") < 400, module.__name__
        said = {word.lower() for word in code_words(source)}
        named = {w for w in said for family in ("sac", "ppo", "imitation", "jaxmarl", "gymnax", "gymnasium", "brax",
                                                "init_from_buffer") if family in w}
        assert not named, (module.__name__, named)


def test_parameter_namespaces_come_from_the_algorithm_registry(monkeypatch):
    """A pipeline that holds an algorithm's config under its own name (ppo_imitation) is checked as that config
    because the algorithm's registry entry declares it, not because configuration.py spells it out."""
    from rlpipe import configuration
    from rlpipe.rl import algorithm

    with pytest.raises(ConfigError) as err:
        configuration.check_parameters({"ppo_imitation": {"train": {"lr_typo": 1}}})
    assert err.value.key == "ppo_imitation.train.lr_typo"
    configuration.check_parameters({"ppo_variant": {"train": {"lr_typo": 1}}})  # declared by none: not a config
    plugin = algorithm.REGISTRY["ppo"]
    monkeypatch.setitem(algorithm.REGISTRY, "ppo", plugin._replace(namespaces=(*plugin.namespaces, "ppo_variant")))
    with pytest.raises(ConfigError) as err:
        configuration.check_parameters({"ppo_variant": {"train": {"lr_typo": 1}}})
    assert err.value.key == "ppo_variant.train.lr_typo"
