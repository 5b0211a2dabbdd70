"""conf/schemas/*.json: generated from the typed configs, current, and accepting the shipped parameter files."""

import json

import pytest
import yaml

from rlpipe import schemas
from rlpipe.rl.algorithm import REGISTRY
from rlpipe.rl.config import ConfigError, parse, to_dict
from tests.conftest import PROJECT_ROOT

try:
    import jsonschema
except ImportError:  # not a dependency: without it the files are checked by parsing them instead
    jsonschema = None

SCHEMA_DIR = PROJECT_ROOT / "conf" / "schemas"
# parameter file -> its schema
SHIPPED = {
    "conf/base/parameters_sac.yml": "sac.json",
    "conf/base/parameters_ppo.yml": "ppo.json",
    "conf/base/parameters.yml": "parameters.json",
    "conf/ppo_pendulum/parameters_ppo.yml": "ppo.json",
    "conf/base/parameters_sac_tune.yml": "sac_tune.json",
    "conf/base/parameters_ppo_tune.yml": "ppo_tune.json",
    "conf/base/parameters_ppo_imitation.yml": "ppo_imitation.json",
    "conf/base/parameters_masac.yml": "masac.json",
}


def sections(schema_name):
    if schema_name == "parameters.json":
        return schemas.SHARED_SECTIONS
    if schema_name.endswith("_tune.json"):
        from rlpipe.rl.tuning import TuneConfig

        return {schema_name.removesuffix(".json"): TuneConfig}
    algorithm = schema_name.removesuffix(".json")
    return {algorithm: schemas.config_class(algorithm)}


def test_every_algorithm_has_a_schema():
    assert set(schemas.PIPELINES) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(schemas.schemas()))
def test_shipped_schemas_match_the_code(name):
    assert (SCHEMA_DIR / name).read_text() == schemas.render(schemas.schemas()[name]), (
        f"conf/schemas/{name} is stale: run `make schemas`")


def test_check_names_stale_files_and_generation_is_deterministic(tmp_path, capsys):
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "sac.json" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # --check writes nothing
    assert schemas.main(["--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schemas.schemas())
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "ppo.json").write_text("{}\n")
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ppo.json" in err and "sac.json" not in err
    text = (tmp_path / "sac.json").read_text()
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("path,schema_name", SHIPPED.items())
def test_shipped_parameters_validate_against_their_schema(path, schema_name):
    params = yaml.safe_load((PROJECT_ROOT / path).read_text())
    if jsonschema is not None:
        schema = json.loads((SCHEMA_DIR / schema_name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema).validate(params)
    for name, cls in sections(schema_name).items():  # and the configs themselves accept them
        parse(cls, params.get(name), name)


@pytest.mark.parametrize("path,schema_name", [(p, s) for p, s in SHIPPED.items() if p.startswith("conf/base/")])
def test_shipped_parameter_files_name_their_schema(path, schema_name):
    first = (PROJECT_ROOT / path).read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../schemas/{schema_name}"
    assert (PROJECT_ROOT / path).parent.joinpath("../schemas", schema_name).resolve().is_file()


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.parametrize("name", sorted(schemas.schemas()))
def test_schema_documents_every_key_and_forbids_unknown_ones(name):
    schema = schemas.schemas()[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    objects = [n for n in walk(schema) if "properties" in n]
    assert objects and all(n.get("additionalProperties") is False for n in objects)
    for node in objects:
        if node is schema:
            continue
        for key, prop in node["properties"].items():
            assert prop.get("description"), f"{node.get('title')}.{key} has no description"
            assert "default" in prop or key in node.get("required", ()), f"{node.get('title')}.{key} has no default"


def test_schema_carries_bounds_choices_and_declared_defaults():
    ppo = schemas.schemas()["ppo.json"]
    defs = ppo["$defs"]
    ppo_config = defs[ppo["properties"]["ppo"]["$ref"].split("/")[-1]]
    network = defs[ppo_config["properties"]["network"]["$ref"].split("/")[-1]]
    assert network["properties"]["activation"]["enum"] == ["relu", "tanh", "gelu", "silu"]
    assert network["properties"]["activation"]["default"] == "tanh"  # PPO's, not NetworkConfig's own
    assert network["properties"]["hidden_sizes"]["items"] == {"type": "integer", "minimum": 1, "maximum": 2**16}
    train = defs[ppo_config["properties"]["train"]["$ref"].split("/")[-1]]["properties"]
    assert train["gamma"]["exclusiveMinimum"] == 0.0 and train["gamma"]["maximum"] == 1.0
    from rlpipe.rl.ppo.config import PPOConfig

    defaults = to_dict(PPOConfig())
    assert {k: p["default"] for k, p in ppo_config["properties"].items()} == defaults
    evaluation = schemas.schemas()["parameters.json"]["$defs"]["EvaluationConfig"]["properties"]
    assert evaluation["scenarios"]["enum"] == ["stored", "fresh"]


@pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed")
@pytest.mark.parametrize("raw", [
    {"sac": {"train": {"lr_typo": 1}}},
    {"sac": {"train": {"num_envs": True}}},
    {"sac": {"train": {"gamma": 1.5}}},
    {"sac": {"network": {"hidden_sizes": []}}},
    {"sac": {"network": {"activation": "sigmoid"}}},
    {"sac": {"scenarios": {"ranges": {"m": [1.0]}}}},
    {"sac": {"tracking": {"register": "sometimes"}}},
    {"ppo": {}},
])
def test_schema_rejects_what_the_config_rejects(raw):
    schema = json.loads((SCHEMA_DIR / "sac.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    if "sac" in raw:
        with pytest.raises(ConfigError):
            parse(schemas.config_class("sac"), raw["sac"], "sac")


def leaves(node, path=()):
    """(dotted path, value) of every value in a nested mapping (a mapping with no keys is a value)."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield ".".join(path), node


@pytest.mark.parametrize("algo", sorted(REGISTRY))
def test_shipped_parameters_show_only_typed_defaults(algo):
    """conf/base/parameters_<algo>.yml lists what users usually change, each with the typed config's default (the
    one home of every default): every value it shows is that default, it parses to exactly the defaults, and it is
    not a dump of every key."""
    shipped = yaml.safe_load((PROJECT_ROOT / f"conf/base/parameters_{algo}.yml").read_text())[algo]
    config_class = schemas.config_class(algo)
    defaults = dict(leaves(to_dict(config_class())))
    shown = dict(leaves(json.loads(json.dumps(shipped))))
    assert {key: value for key, value in shown.items() if defaults.get(key, "<no such key>") != value} == {}
    assert parse(config_class, shipped, algo) == config_class()
    assert len(shown) < len(defaults) / 1.5, f"parameters_{algo}.yml lists {len(shown)} of {len(defaults)} keys"
