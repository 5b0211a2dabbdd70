"""JSON Schemas of the parameter files, generated from the typed configs (:mod:`rlpipe.rl.config`).

``python -m rlpipe.schemas`` (``make schemas``) writes ``conf/schemas/<algo>.json`` (the whole
``parameters_<algo>.yml``; also one for each other parameter namespace its registry entry declares, e.g.
``ppo_imitation.json``), ``conf/schemas/<algo>_tune.json`` (its search, ``parameters_<algo>_tune.yml``) and
``conf/schemas/parameters.json`` (``parameters.yml``: ``distributed``, ``evaluation``, ``compare``,
``demonstrations``); ``--check`` writes nothing and exits 1 naming the files that differ from the code. Editors that
speak JSON Schema (VS Code's YAML extension, the JetBrains IDEs) use them for completion, hover docs and
checking as you type; the configs stay the authority (cross-field rules are not in the schemas).

Importing this module (or running it) does not import JAX.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import to_jsonable_python

from rlpipe.rl import config as shared
from rlpipe.rl.algorithm import REGISTRY

# algorithm -> "module:attribute" of its config class: every registered algorithm's
PIPELINES: dict[str, str] = {name: plugin.config for name, plugin in REGISTRY.items()}
# pipelines whose parameters are an algorithm's config under another name (its registry entry's namespaces) -> it
NAMESPACES: dict[str, str] = {namespace: name for name, plugin in REGISTRY.items() for namespace in plugin.namespaces}
# the top-level sections of parameters.yml
SHARED_SECTIONS: dict[str, type[shared.Config]] = {
    "distributed": shared.DistributedConfig,
    "evaluation": shared.EvaluationConfig,
    "compare": shared.CompareConfig,
    "demonstrations": shared.DemonstrationsConfig,
}
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def project_root() -> Path:
    """The Kedro project this module belongs to (an editable install), else the working directory."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "conf").is_dir() else Path.cwd()


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, with sections' defaults shown (they come from factories) and no per-field titles
    (the key is the title; the description says what it is)."""

    def get_default_value(self, schema):
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            return schema["default_factory"]()
        return super().get_default_value(schema)

    def field_title_should_be_set(self, schema) -> bool:
        return False


def file_schema(sections: dict[str, type[shared.Config]], title: str, description: str) -> dict[str, Any]:
    """The schema of a parameters file whose top-level keys are ``sections``."""
    defs: dict[str, Any] = {}
    properties = {}
    for name, cls in sections.items():
        schema = cls.model_json_schema(ref_template="#/$defs/{model}", schema_generator=_Generator)
        defs.update(schema.pop("$defs", {}))
        defs[cls.__name__] = schema
        _declared_defaults(cls, defs)
        properties[name] = {"$ref": f"#/$defs/{cls.__name__}"}
    return {"$schema": DRAFT, "title": title, "description": description, "type": "object",
            "properties": properties, "additionalProperties": False, "$defs": defs}


def _declared_defaults(cls: type[shared.Config], defs: dict[str, Any]) -> None:
    """A section whose parent declares other defaults than the section class's own (PPO's ``network.activation``
    is ``tanh``) gets its own copy of the section's schema with those defaults, so editors show the real ones."""
    for name, info in cls.model_fields.items():
        section = shared.strip_optional(info.annotation)
        if not (isinstance(section, type) and issubclass(section, shared.Config)):
            continue
        _declared_defaults(section, defs)
        patch = shared.section_defaults(cls).get(name)
        if not patch:
            continue
        variant = f"{cls.__name__}_{name}"
        schema = copy.deepcopy(defs[section.__name__])
        for key, value in patch.items():
            schema["properties"][key]["default"] = to_jsonable_python(value)
        defs[variant] = schema
        defs[cls.__name__]["properties"][name]["$ref"] = f"#/$defs/{variant}"


def config_class(algorithm: str) -> type[shared.Config]:
    """The config class of an algorithm, or of a pipeline named in ``NAMESPACES``."""
    module, _, attribute = PIPELINES[NAMESPACES.get(algorithm, algorithm)].partition(":")
    return getattr(importlib.import_module(module), attribute)


def schemas() -> dict[str, dict[str, Any]]:
    """File name in conf/schemas -> its schema."""
    out = {}
    for algorithm in PIPELINES:
        out[f"{algorithm}.json"] = file_schema(
            {algorithm: config_class(algorithm)}, f"parameters_{algorithm}.yml",
            f"The {algorithm} pipeline's parameters (generated by python -m rlpipe.schemas from "
            f"{PIPELINES[algorithm].replace(':', '.')}; do not edit)")
    for name, algorithm in NAMESPACES.items():
        out[f"{name}.json"] = file_schema(
            {name: config_class(name)}, f"parameters_{name}.yml",
            f"The {name} pipeline's parameters: the {algorithm} config (generated by python -m rlpipe.schemas from "
            f"{PIPELINES[algorithm].replace(':', '.')}; do not edit)")
    from rlpipe.rl.tuning import TuneConfig

    for algorithm in PIPELINES:
        if not (project_root() / "conf" / "base" / f"parameters_{algorithm}_tune.yml").is_file():  # no search shipped
            continue
        out[f"{algorithm}_tune.json"] = file_schema(
            {f"{algorithm}_tune": TuneConfig}, f"parameters_{algorithm}_tune.yml",
            f"The {algorithm}_tune search pipeline's parameters (generated by python -m rlpipe.schemas from "
            "rlpipe.rl.tuning.TuneConfig; do not edit)")
    out["parameters.json"] = file_schema(
        SHARED_SECTIONS, "parameters.yml",
        "Parameters every pipeline shares (generated by python -m rlpipe.schemas from rlpipe.rl.config; do not edit)")
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlpipe.schemas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs from the code")
    parser.add_argument("--dir", type=Path, default=None, help="output folder (default: <project>/conf/schemas)")
    args = parser.parse_args(argv)
    folder = args.dir or project_root() / "conf" / "schemas"
    stale = []
    for name, schema in schemas().items():
        path = folder / name
        text = render(schema)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check:
        if stale:
            print(f"stale JSON Schema(s): {', '.join(map(str, stale))}; regenerate with `make schemas`",
                  file=sys.stderr)
            return 1
        print(f"JSON Schemas in {folder} are up to date")
        return 0
    print(f"wrote {', '.join(map(str, stale))}" if stale else f"JSON Schemas in {folder} are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
