"""Run versions that stay unique when several runs of one project start in the same millisecond.

Kedro names a run (its session id, the save version of every versioned catalog entry, and the ``run_id`` tag of
its MLflow run) by the UTC time to the millisecond. Two runs launched together (a job array, a shell loop with
``&``) can get the same name; the second then fails at its first versioned save ("must not exist if versioning
is enabled"). ``unique_timestamp`` hands out Kedro's timestamps through a lock file (``lock_path``), so each run of
the project gets a later one than the run before it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from kedro.io.core import generate_timestamp

_CURRENT: dict[str, str | None] = {"run": None}

LOCK_NAME = ".last_run_version"  # in data/: holds the last version handed out (one line)
MAX_WAIT_S = 2.0  # a clock set back by more than this is trusted rather than waited for


def lock_path(data_dir: Path) -> Path:
    """The file that holds the last version handed out: in the project's ``data/`` folder (shared by every host
    that mounts the project), or, before that folder exists, in the temp folder under a name of the project's path
    (a run that stops at a config error leaves the project as it found it)."""
    data_dir = Path(data_dir).absolute()
    if data_dir.is_dir():
        return data_dir / LOCK_NAME
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rlpipe{LOCK_NAME}-{digest}"


def unique_timestamp(data_dir: Path) -> str:
    """Kedro's version timestamp, later than the last one handed out for ``data_dir`` (waits a millisecond or two
    when a concurrent run just took the current one). Falls back to the plain timestamp where files cannot be
    locked (no ``fcntl``, a read-only folder)."""
    try:
        import fcntl

        handle = open(lock_path(data_dir), "a+")  # noqa: SIM115 - closed below, after the lock is released
    except (ImportError, OSError):
        return generate_timestamp()
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        last = handle.read().strip()
        stamp = generate_timestamp()
        deadline = time.monotonic() + MAX_WAIT_S
        # fixed-width stamps sort as the times they name; a clock set back by more than MAX_WAIT_S is trusted
        while stamp == last or (stamp < last and time.monotonic() < deadline):
            time.sleep(0.001)
            stamp = generate_timestamp()
        handle.seek(0)
        handle.truncate()
        handle.write(stamp + "\n")
        handle.flush()
    return stamp


def use_unique_run_versions(data_dir: Path) -> None:
    """Make new Kedro sessions of this project take their id from ``unique_timestamp``. Kedro imports the
    project's settings (``validate_settings``) right before it names a new session, so settings.py calls this."""
    from rlpipe.compat import set_session_id_maker

    set_session_id_maker(lambda: unique_timestamp(data_dir))


def set_current_run(version: str | None) -> None:
    """The version (Kedro session id) of the run this process is in, for titles and captions."""
    _CURRENT["run"] = version


def current_run() -> str | None:
    return _CURRENT["run"]
