"""A throwaway PostgreSQL server for the tests that need a real one (the search's workers sharing a study).

The session-scoped fixture ``postgres_server`` makes a new cluster in a folder of its own, starts it on a free port
of 127.0.0.1 (its unix socket in that folder, so it never meets a system server), with a password for its one
user, and stops it at teardown (``pg_ctl stop -m immediate``) and removes the folder: no process and no file stays.
The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, what ``make system-packages`` installs); where
there are none, the tests that need them skip with a loud reason. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` user the Debian package creates (through ``runuser``).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import signal
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

START_TIMEOUT_S = 60  # pg_ctl start -w waits at most this long for the server to accept connections
NO_SERVER = ("NO POSTGRESQL SERVER BINARIES in /usr/lib/postgresql/*/bin: the PostgreSQL tests did not run. "
             "`make test` installs them (make system-packages: apt-get install postgresql); CI must not skip this")


@dataclasses.dataclass(frozen=True)
class Server:
    """How to reach the running server: a user with a password, and a database of its own for the tests."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, database: str | None = None) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of ``database`` (by default the tests' database)."""
        return (f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/"
                f"{database or self.database}")


def server_binaries() -> Path | None:
    """The bin folder of the newest Debian PostgreSQL that has the server, initdb and pg_ctl, or None."""
    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)

    folders = [p for p in Path("/usr/lib/postgresql").glob("*/bin")
               if all((p / name).is_file() for name in ("postgres", "initdb", "pg_ctl"))]
    return max(folders, key=version) if folders else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` as the user the server may run as: the ``postgres`` user when we are root, else ourselves."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("NO runuser: PostgreSQL refuses to run as root and there is no way to run it as `postgres`")
    return [runuser, "-u", "postgres", "--", *command]


def _owned_by_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _run(command: list[str], cwd: Path, timeout: float) -> None:
    done = subprocess.run(_as_server_user(command), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server (``Server``) for the whole session, stopped and removed at its end."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(NO_SERVER)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("NO `postgres` USER: PostgreSQL refuses to run as root (apt-get install postgresql makes it)")
    # not in pytest's temp area: its folders are private to root, and the server's user must reach its own folder;
    # a short path also keeps the unix socket's path under its length limit
    folder = Path(tempfile.mkdtemp(prefix="rlpipe-pg-", dir="/tmp"))
    folder.chmod(0o755)
    data, server = folder / "data", Server("127.0.0.1", free_port(), "rlpipe", "pw-" + os.urandom(6).hex(), "studies")
    password_file = folder / "password"
    password_file.write_text(server.password + "\n")
    for path in (folder, password_file):
        _owned_by_server_user(path)
    started = False
    try:
        _run([str(binaries / "initdb"), "-D", str(data), "-U", server.user, f"--pwfile={password_file}",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"], folder, 120)
        options = (f"-p {server.port} -k {folder} -c listen_addresses={server.host} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        started = True  # from here on a server may be up, whatever pg_ctl says: teardown stops it
        try:
            _run([str(binaries / "pg_ctl"), "start", "-D", str(data), "-w", "-t", str(START_TIMEOUT_S), "-o",
                  options, "-l", str(folder / "server.log")], folder, START_TIMEOUT_S + 30)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            log = (folder / "server.log").read_text() if (folder / "server.log").is_file() else "(no log)"
            raise RuntimeError(f"the test PostgreSQL server did not start: {error}\nits log:\n{log[-3000:]}") from None
        _create_database(server)
        yield server
    finally:
        if started:
            _stop(binaries, data, folder)
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(server: Server, database: str | None = None) -> None:
    import psycopg

    with psycopg.connect(host=server.host, port=server.port, user=server.user, password=server.password,
                         dbname="postgres", autocommit=True, connect_timeout=10) as connection:
        connection.execute(f'CREATE DATABASE "{database or server.database}"')


def new_database(server: Server, database: str) -> str:
    """An empty database ``database`` on ``server`` (no study tables yet): its URL."""
    _create_database(server, database)
    return server.url(database)


def _stop(binaries: Path, data: Path, folder: Path) -> None:
    """Stop the server at once (its data is thrown away); if pg_ctl cannot, kill the postmaster by its pid."""
    try:
        _run([str(binaries / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30"], folder, 60)
    except (RuntimeError, subprocess.TimeoutExpired):
        pid_file = data / "postmaster.pid"
        if pid_file.is_file():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
