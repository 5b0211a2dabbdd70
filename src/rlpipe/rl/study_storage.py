"""A search's storage checked and explained: the bounded wait for a server, the one line saying why a storage
cannot be opened, a probe that finds that out in a second, and the rule for joining a stored study (same direction,
same space). ``kedro run``'s early check (``rlpipe.configuration``) uses them before Kedro's session, MLflow or JAX
load, and the search when it opens the study, so both say the same words."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT_S = 10  # a server that does not answer (a firewall dropping packets) is an error this soon


def default_file(section: str) -> str:
    """The project's own SQLite file of the search ``section`` (e.g. ``sac_tune``), relative to the project root:
    the storage when neither ``storage_credentials`` nor ``storage`` is set."""
    return f"data/09_tuning/{section}.db"


def configured(section: str, tune: Any, from_credentials: str | None) -> tuple[str | None, str]:
    """(URL, key): the storage the search ``section`` asked for and the parameter that says so. The credentials
    entry's URL (``from_credentials``) when ``storage_credentials`` is set, else ``storage``; a None URL with
    ``storage`` unset means the project's own file (``default_file``)."""
    if tune.storage_credentials:
        return from_credentials, f"{section}.storage_credentials"
    return tune.storage, f"{section}.storage"


def hide_password(url: str) -> str:
    """``url`` with its password (if any) as ``***``: what a message may show of a storage URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<an unreadable URL>"
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def engine_kwargs(url: str) -> dict[str, Any]:
    """A bounded connection wait for a PostgreSQL server (unless the URL sets its own ``connect_timeout``):
    libpq would otherwise wait on an unanswered host for minutes before the error, with no trial to show for it."""
    if url.startswith("postgresql") and "connect_timeout=" not in url:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def storage_problem(error: BaseException, url: str) -> str:
    """One line for a storage that cannot be opened: the server (host and port) or file, the driver's own first
    line (without SQLAlchemy's link and SQL), never the password. A missing driver says which one to install."""
    shown = hide_password(url)
    if isinstance(error, ModuleNotFoundError):
        return (f"cannot open {shown!r}: its driver {error.name!r} is not installed (PostgreSQL: "
                "pip install 'psycopg[binary]' and a postgresql+psycopg:// URL)")
    cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    lines = [line.strip() for line in str(cause).replace(url, shown).splitlines() if line.strip()]
    reason = " ".join(line for line in lines if not line.startswith("(Background on this error"))
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        host = (parsed.host + (f":{parsed.port}" if parsed.port else "")) if parsed.host else None
    except Exception:  # noqa: BLE001 - an unreadable URL: the driver's reason says what is wrong with it
        host = None
    where = f"the server {host} of {shown!r}" if host else repr(shown)
    return f"cannot open {where}: {type(cause).__name__}: {reason or 'no reason given'}"


def probe(url: str) -> str | None:
    """Why the storage at ``url`` cannot be opened (one line, as ``storage_problem`` says it), or None. A SQLite
    file's folder must exist and be writable (nothing is created); a server is connected to once, with the bounded
    wait. Whatever else goes wrong (the schema, the study) is the search's to find when it opens the study."""
    if url.startswith("sqlite:"):
        return _sqlite_problem(url)
    try:
        from sqlalchemy import create_engine

        engine = create_engine(url, **engine_kwargs(url))
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - any driver's error: the URL is what the user can fix
        return storage_problem(error, url)
    return None


def _sqlite_problem(url: str) -> str | None:
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:" or url.startswith("sqlite:///file:"):
        return None
    folder = Path(path).parent
    if not folder.is_dir():
        return f"cannot open {hide_password(url)!r}: its folder {str(folder)!r} does not exist"
    if not os.access(folder, os.W_OK):
        return f"cannot open {hide_password(url)!r}: its folder {str(folder)!r} is not writable"
    return None


def stored_study(url: str, study_name: str) -> tuple[str, dict[str, Any]] | None:
    """(direction, user attributes) of the study ``study_name`` stored at ``url``, or None: no such study, no tables
    yet (nothing is created here), or anything unreadable (the search finds that out when it opens the study)."""
    try:
        import optuna

        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), skip_table_creation=True)
        try:
            study_id = storage.get_study_id_from_name(study_name)
            return storage.get_study_directions(study_id)[0].name.lower(), storage.get_study_user_attrs(study_id)
        finally:
            storage.engine.dispose()
    except Exception:  # noqa: BLE001 - see above: the search's own check says what is wrong
        return None


def study_mismatch(key: str, tune: Any, shown: str, direction: str, user_attrs: dict[str, Any]) -> Any:
    """The ``ConfigError`` for a stored study (``direction``, ``user_attrs``) that this search (``tune``, of the
    section ``key``) must not join: another direction or another space; None if it may."""
    from rlpipe.rl.errors import ConfigError
    from rlpipe.rl.tuning import space_fingerprint

    if direction != tune.direction:
        return ConfigError(f"{key}.direction", f"{tune.direction!r}, but the stored study {tune.study_name!r} on "
                                               f"{shown} is to {direction}: use another study_name")
    stored = user_attrs.get("rlpipe.space")
    if stored is not None and stored != space_fingerprint(tune):
        return ConfigError(f"{key}.space", f"differs from the space the stored study {tune.study_name!r} on {shown} "
                                           f"was created with ({stored}): use another study_name, or the same space")
    return None
