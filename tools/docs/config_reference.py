"""The configuration reference page, rendered from conf/schemas/*.json at docs build time.

The JSON Schemas are generated from the typed configs (`make schemas`, and a test keeps them equal to the code),
so a page rendered from them cannot drift from what `kedro run` accepts: every key, its type, default and doc.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# the parameter files in the order a reader meets them: the main pipelines first, then the rest
ORDER = ("sac", "ppo", "masac", "sac_tune", "ppo_tune", "ppo_imitation", "parameters")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A property's own schema: a bare `$ref` (or an `allOf` of one, pydantic's way of adding a doc) followed."""
    if "$ref" in node:
        return {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if len(node.get("allOf", [])) == 1 and "$ref" in node["allOf"][0]:
        return {**_resolve(node["allOf"][0], defs), **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _type_name(node: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short type: `integer`, `number ≥ 0`, `string or null`, `list of integer`, `one of a, b`."""
    node = _resolve(node, defs)
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "anyOf" in node:
        return " or ".join(dict.fromkeys(_type_name(option, defs) for option in node["anyOf"]))
    kind = node.get("type", "any")
    if kind == "array":
        items = node.get("items")
        if isinstance(items, dict) and items:
            return f"list of {_type_name(items, defs)}"
        return "list"
    if kind == "object" and "properties" in node:
        return "section"
    if kind == "object":
        return "mapping"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node and abs(node[key]) < 2**31 - 1:
            bounds.append(f"{sign} {node[key]:g}")
    return kind + (" " + ", ".join(bounds) if bounds else "")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return "required"
    return "`" + json.dumps(node["default"]).replace("|", "\\|") + "`"


def _section(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The nested section a key holds: the node itself, or the one section of an `anyOf` with null; else None."""
    if node.get("type") == "object" and "properties" in node:
        return node
    options = [_resolve(option, defs) for option in node.get("anyOf", [])]
    sections = [o for o in options if o.get("type") == "object" and "properties" in o]
    if len(sections) == 1 and all(o is sections[0] or o.get("type") == "null" for o in options):
        return sections[0]
    return None


def _rows(properties: dict[str, Any], defs: dict[str, Any], prefix: str) -> list[str]:
    """One table row per key; a nested section gets a row of its own, then its keys, dotted."""
    rows = []
    for key, raw in properties.items():
        node = _resolve(raw, defs)
        dotted = f"{prefix}.{key}" if prefix else key
        doc = _cell(raw.get("description") or node.get("description") or "")
        section = _section(node, defs)
        if section is not None:
            optional = " or null" if section is not node else ""
            rows.append(f"| `{dotted}` | section{optional} | {_default(node) if optional else ''} | {doc} |")
            rows += _rows(section["properties"], defs, dotted)
        else:
            rows.append(f"| `{dotted}` | {_cell(_type_name(raw, defs))} | {_default(node)} | {doc} |")
    return rows


def schema_section(path: Path) -> list[str]:
    """One parameter file's section: its title, description, and every key of its top-level sections."""
    schema = json.loads(path.read_text())
    defs = schema.get("$defs", {})
    lines = [f"## `{schema.get('title', path.stem)}`", ""]
    for name, raw in schema["properties"].items():
        node = _resolve(raw, defs)
        lines += [f"### `{name}`", ""]
        if node.get("description"):
            lines += [node["description"], ""]
        lines += ["| key | type | default | what it is |", "| --- | --- | --- | --- |"]
        lines += _rows(node.get("properties", {}), defs, name) + [""]
    return lines


def page(schemas: Path) -> str:
    """The whole page: every schema file, in ORDER, then any other file the folder holds."""
    files = sorted(schemas.glob("*.json"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER),
                                                          p.stem))
    lines = ["# Configuration reference", "",
             "Every key each parameter file takes, with its type, default and meaning. This page is generated when "
             "the site is built, from the JSON Schemas in `conf/schemas/` (which `make schemas` writes from the "
             "typed configs); a key left out of a parameter file takes the default shown here. How to set keys "
             "(parameter files, `--params`, config environments) is in [Configuration](../configuration.md).", ""]
    for path in files:
        lines += schema_section(path)
    return "\n".join(lines) + "\n"
