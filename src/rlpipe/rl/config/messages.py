"""A raw mapping into a typed config, and pydantic's errors into rlpipe's words.

:func:`parse` validates; the first problem (in the order a depth-first walk over the keys meets it) becomes one
:class:`ConfigError` naming the dotted key, the offending value and what is allowed, so a user sees one short block
before anything expensive starts.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from rlpipe.rl.config.fields import Config, strip_optional
from rlpipe.rl.errors import ConfigError


def parse(cls: type[Config], data: Any, key: str):
    """Build config ``cls`` from a mapping, checking every key, type and bound; ``key`` is the dotted prefix.
    The first problem found (in the order of the keys, a section's unknown keys first) is a ConfigError."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise _config_error(cls, data, key, _first(error.errors(include_url=False))) from None


def _first(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The error a depth-first walk in key order meets first: pydantic lists a section's unknown keys after its
    fields' errors, while a section's unknown keys are reported before anything inside it."""
    first = errors[0]
    enclosing = [e for e in errors if e["type"] == "extra_forbidden"
                 and tuple(first["loc"][:len(e["loc"]) - 1]) == tuple(e["loc"][:-1])]
    return min(enclosing, key=lambda e: len(e["loc"])) if enclosing else first


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _config_error(cls: type[Config], data: Any, key: str, error: dict[str, Any]) -> ConfigError:
    """One pydantic error as a ConfigError in rlpipe's words."""
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    loc = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # a mapping's key (not its value) is bad
        loc = loc[:-1]

    def at(path):
        return key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)

    if kind == "missing" and loc and not isinstance(loc[-1], int):  # a required setting (a tuple's is below)
        return ConfigError(at(loc), "is required")
    if kind == "extra_forbidden":
        allowed = list(_type_at(cls, loc[:-1]).model_fields)
        name = str(loc[-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return ConfigError(at(loc), f"unknown key{hint}; allowed keys: {', '.join(allowed)}")
    if kind in ("model_type", "model_attributes_type"):
        return ConfigError(at(loc), f"expected a mapping of settings, got {_show(value)}")
    if kind == "dict_type":
        return ConfigError(at(loc), f"expected a mapping, got {_show(value)}")
    if kind == "bool_type":
        return ConfigError(at(loc), f"expected true or false, got {_show(value)}")
    if kind == "config_resume":
        return ConfigError(at(loc), f"expected true, false or 'auto', got {_show(value)}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return ConfigError(at(loc), f"expected an integer, got {_show(value)}")
    if kind in ("float_type", "float_parsing"):
        return ConfigError(at(loc), f"expected a number, got {_show(value)}")
    if kind == "finite_number":
        return ConfigError(at(loc), f"expected a finite number, got {float(value)}")
    if kind in ("string_type", "string_too_short"):
        return ConfigError(at(loc), f"expected a non-empty string, got {_show(value)}")
    if kind in ("literal_error", "config_choice"):
        if not isinstance(value, str) or not value:
            return ConfigError(at(loc), f"expected a non-empty string, got {_show(value)}")
        choices = ctx["allowed"] if kind == "config_choice" else typing.get_args(_type_at(cls, loc))
        return ConfigError(at(loc), f"{value!r} is not one of {', '.join(map(repr, choices))}")
    if kind in ("tuple_type", "list_type"):
        return ConfigError(at(loc), f"expected a list, got {_show(value)}")
    if kind in ("too_short", "too_long") or (kind == "missing" and loc and isinstance(loc[-1], int)):
        where = loc[:-1] if kind == "missing" else loc
        args = typing.get_args(_type_at(cls, where))
        if len(args) == 2 and args[1] is Ellipsis:
            return ConfigError(at(where), "expected a non-empty list")
        got = len(value) if hasattr(value, "__len__") else ctx.get("actual_length")
        return ConfigError(at(where), f"expected a list of {len(args)} values, got {got}")
    if kind in _BOUNDS:
        name, symbol = _BOUNDS[kind]
        if _type_at(cls, loc) is float:
            value = float(value)
        return ConfigError(at(loc), f"{value!r} is out of range: must be {symbol} {ctx[name]}")
    return ConfigError(at(loc), f"{error['msg']}, got {_show(value)}")  # no such error type is known to occur


def _type_at(cls: type[Config], loc: tuple) -> Any:
    """The type that the value at ``loc`` (a pydantic error location) is validated as."""
    hint: Any = cls
    for part in loc:
        hint = strip_optional(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            hint = hint.model_fields[part].annotation
        elif origin is tuple:
            hint = args[0] if len(args) == 2 and args[1] is Ellipsis else args[part]
        elif origin is dict:
            hint = args[1]
        else:
            return None
    return strip_optional(hint)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"

