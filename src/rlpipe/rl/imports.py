"""Objects named in config as ``package.module:Name`` (a user's environment class, a network module)."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(path: str) -> Any:
    """The object ``package.module:Name`` names; a ValueError saying what is missing when there is none."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from exc
    found = getattr(module, name, None)
    if found is None:
        raise ValueError(f"module {module_name!r} has no attribute {name!r}")
    return found
