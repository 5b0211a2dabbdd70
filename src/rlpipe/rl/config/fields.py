"""The field DSL every config section is written in: the strict, frozen base class, ``spec`` (a field with its
rules and doc), ``redefault`` (an inherited field with another default) and the reusable field types.

Validation is strict: a bool is not an integer or a number, a string is not a number, None is accepted only where
the type is Optional; an integer is accepted as a number (converted), a list as a tuple. A missing or null section
means that section's defaults (the ones its parent declares for it: PPO's ``tracking`` keeps ``rlpipe-ppo`` as its
registered model name when only other tracking keys are given).
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError, PydanticUndefined


class Config(BaseModel):
    """Base of every config section: frozen, strict, unknown keys are errors."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False, str_min_length=1)
    # keys a section no longer has -> the one value the configs stored with agents and checkpoints carry for them:
    # that value is dropped (an agent stored before the key left still loads); any other is an unknown key
    retired: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _plain_mapping(cls, data: Any) -> Any:
        """None means all defaults; any mapping is accepted (names as strings); a section given in part keeps the
        other values its parent declares as that section's default."""
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            return data  # an instance passes; anything else is reported as "expected a mapping of settings"
        data = {k if isinstance(k, str) else str(k): v for k, v in data.items()}
        for name, value in cls.retired.items():
            if name in data and type(data[name]) is type(value) and data[name] == value:
                del data[name]
        for name, defaults in section_defaults(cls).items():
            if name not in data:
                continue
            if data[name] is None:
                del data[name]  # the section's declared default
            elif defaults and isinstance(data[name], Mapping):
                given = {k if isinstance(k, str) else str(k): v for k, v in data[name].items()}
                data[name] = {**defaults, **given}
        return data


@functools.cache
def section_defaults(cls: type[Config]) -> dict[str, dict[str, Any]]:
    """For each section field of ``cls``: the values in which its declared default differs from the section
    class's own defaults (e.g. PPO's ``tracking.registered_model_name``). The JSON Schemas show these too."""
    out = {}
    for name, info in cls.model_fields.items():
        section = strip_optional(info.annotation)
        if not (isinstance(section, type) and issubclass(section, Config)):
            continue
        declared = info.get_default(call_default_factory=True)
        if not isinstance(declared, Config):  # an optional section (null by default) has no defaults to keep
            out[name] = {}
            continue
        plain = section()
        out[name] = {k: getattr(declared, k) for k in type(declared).model_fields
                     if getattr(declared, k) != getattr(plain, k)}
    return out


def strip_optional(hint: Any) -> Any:
    """``hint`` without Annotated metadata and without its Optional: the type a value is checked as."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(options) != 1:
                return hint
            hint = options[0]
        else:
            return hint


def spec(default: Any = PydanticUndefined, *, ge=None, gt=None, le=None, lt=None, choices=None, doc: str = "",
         default_factory: Any = None):
    """A config field with its validation rules (bounds, allowed values) and a one-line doc (the schema's
    description). Prefer a ``Literal[...]`` type to ``choices``: both are checked, the Literal is also typed."""
    if default_factory is not None:
        kwargs = {"default_factory": default_factory}
    else:
        kwargs = {"default": default}
    info = Field(**kwargs, ge=ge, gt=gt, le=le, lt=lt, description=doc or None,
                 json_schema_extra={"enum": list(choices)} if choices else None)
    if choices:
        allowed = tuple(choices)

        def one_of(value):
            if value not in allowed:
                raise PydanticCustomError("config_choice", "{value} is not one of {allowed}",
                                          {"value": value, "allowed": allowed})
            return value

        info.metadata.append(AfterValidator(one_of))
    return info


def redefault(base: type[BaseModel], name: str, default: Any, doc: str | None = None):
    """Field ``name`` of ``base`` with another default (and doc), its type rules and bounds kept: how a section
    subclass (e.g. an algorithm's ``LoopConfig``) changes what it starts from without restating the rules."""
    info = copy.copy(base.model_fields[name])
    info.default = default
    if doc is not None:
        info.description = doc
    return info


def to_dict(config: Config) -> dict:
    """The plain nested-dict form of a config (JSON-ready: tuples become lists)."""
    return config.model_dump(mode="json")


def dotted(tree: dict, prefix: str = "") -> dict:
    """A nested dict (e.g. ``to_dict`` of a config) as one level keyed by dotted paths (``train.batch_size``); an
    empty dict stays a value of its own key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def as_tuple(value: Any) -> Any:
    """A list as a tuple (YAML has no tuples); anything else is left for the type check to judge."""
    return tuple(value) if isinstance(value, list) else value


def as_dict(value: Any) -> Any:
    """Any mapping as a dict with string keys (YAML may give an int key); anything else is left for the check."""
    return {k if isinstance(k, str) else str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value


# list values are accepted for tuples, any mapping for dicts
HiddenSizes = Annotated[tuple[Annotated[int, Field(ge=1, le=2**16)], ...], Field(min_length=1),
                        BeforeValidator(as_tuple)]
Interval = Annotated[tuple[float, float], BeforeValidator(as_tuple)]
Ranges = Annotated[dict[str, Interval], BeforeValidator(as_dict)]
Names = Annotated[tuple[str, ...], BeforeValidator(as_tuple)]
Kwargs = Annotated[dict[str, Any], BeforeValidator(as_dict)]
Activation = Literal["relu", "tanh", "gelu", "silu"]


def _module_path(value: Any) -> Any:
    if isinstance(value, str) and (value.count(":") != 1 or not all(value.split(":"))):
        raise PydanticCustomError("config_module", "expected 'package.module:ClassName'")
    return value


def _observation_mask(value: Any) -> Any:
    """A list of kept observation indices (as a tuple) or a variant name; anything else is reported here."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise PydanticCustomError("config_mask", "expected a non-empty list of observation indices")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise PydanticCustomError("config_mask", "expected a list of integer observation indices")
        if len(set(value)) != len(value):
            raise PydanticCustomError("config_mask", "expected distinct observation indices")
        return tuple(value)
    raise PydanticCustomError("config_mask", "expected a list of observation indices kept, or a variant name "
                                             "such as 'no_velocity'")


def _resume_mode(value: Any) -> Any:
    """true, false or 'auto', and nothing else (not 1, not 'yes'), named as such."""
    if isinstance(value, bool) or (isinstance(value, str) and value == "auto"):
        return value
    raise PydanticCustomError("config_resume", "expected true, false or 'auto'")


ModulePath = Annotated[str, AfterValidator(_module_path)]
# train.resume: a bool, or 'auto' (resume the same config's interrupted run if there is one, else start fresh)
ResumeMode = Annotated[bool | Literal["auto"], BeforeValidator(_resume_mode)]
# a list, or one string of names separated by spaces (``kedro run --params`` splits its value at commas)
RunNames = Annotated[tuple[str, ...],
                     BeforeValidator(lambda v: tuple(v.split()) if isinstance(v, str) else as_tuple(v))]
ObservationMask = Annotated[tuple[int, ...] | str | None, BeforeValidator(_observation_mask)]
