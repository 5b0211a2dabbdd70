"""Run versions that stay unique when several runs of one project start in the same millisecond.

Kedro names a run (its session id, the save version of every versioned catalog entry, and the ``run_id`` tag of
its MLflow run) by the UTC time to the millisecond. Two runs launched together (a job array, a shell loop with
``&``) can get the same name; the second then fails at its first versioned save ("must not exist if versioning
is enabled"). ``unique_timestamp`` hands out Kedro's timestamps through a lock file in the project's ``data/``
folder, so each run of the project on this file system gets a later one than the run before it.
"""

from __future__ import annotations

import time
from pathlib import Path

from kedro.io.core import generate_timestamp

LOCK_NAME = ".last_run_version"  # in data/: holds the last version handed out (one line)
MAX_WAIT_S = 2.0  # a clock set back by more than this is trusted rather than waited for


def unique_timestamp(data_dir: Path) -> str:
    """Kedro's version timestamp, later than the last one handed out in ``data_dir`` (waits a millisecond or two
    when a concurrent run just took the current one). Falls back to the plain timestamp where files cannot be
    locked (no ``fcntl``, read-only or missing folder)."""
    try:
        import fcntl

        Path(data_dir).mkdir(parents=True, exist_ok=True)  # where the run's artifacts go anyway
        handle = open(Path(data_dir) / LOCK_NAME, "a+")  # noqa: SIM115 - closed below, after the lock is released
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
    from kedro.framework.session import session

    session.generate_timestamp = lambda: unique_timestamp(data_dir)
