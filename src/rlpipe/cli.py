"""The project's ``kedro run``: Kedro's own run command with a quiet console and config errors as messages.

Every option of Kedro's ``run`` works as before; ``-v``/``--verbose`` (or ``RLPIPE_VERBOSE=1``) shows Kedro's
full logging and the traceback of a config error (see ``rlpipe.console``).
"""

from __future__ import annotations

import sys

import click
from kedro.framework.cli.project import run as kedro_run

from rlpipe import configuration, console
from rlpipe.console import CONFIG_ERROR_EXIT_CODE, ENV_ERROR_EXIT_CODE


@click.group(name="rlpipe")
def cli() -> None:
    """rlpipe's project commands."""


def _run(verbose: bool, **kwargs):
    verbose = verbose or console.verbose()
    console.configure_logging(verbose)
    if not verbose and (line := _unknown_pipeline(kwargs.get("pipeline"), kwargs.get("pipelines"))) is not None:
        click.echo(line, err=True)
        sys.exit(CONFIG_ERROR_EXIT_CODE)
    try:
        result = kedro_run.callback(**kwargs)
    except Exception as exc:
        if verbose:
            raise
        if (error := console.config_error_in(exc)) is not None:
            click.echo(console.config_error_block(error), err=True)
            sys.exit(CONFIG_ERROR_EXIT_CODE)
        if (error := console.env_error_in(exc)) is not None:
            click.echo(console.env_error_block(error), err=True)
            sys.exit(ENV_ERROR_EXIT_CODE)
        if (error := console.disk_error_in(exc)) is not None:
            click.echo(console.disk_error_block(error), err=True)
            sys.exit(console.DISK_ERROR_EXIT_CODE)
        raise
    if _own_process():
        _exit_now(0)
    return result


def _unknown_pipeline(pipeline: str | None, pipelines: list[str] | None) -> str | None:
    """The one line naming a requested pipeline that is not registered, and the registered ones (Kedro's own error
    is a traceback). ``kedro run`` usually says it before Kedro starts (``rlpipe.configuration.run_pipeline_error``);
    this catches what that check leaves to the run (options from a ``--config`` file, an in-process invocation)
    with the same names, known without importing the pipelines."""
    requested = ([pipeline] if pipeline else []) + list(pipelines or [])
    names = configuration.pipeline_names() if requested else None
    # never the registry itself here: building it imports the env families, and some (gymnax) touch JAX's backend
    # at import, which a multi-process run must initialize first (in the session's first hook)
    return configuration.unknown_pipeline_message(requested, names) if names is not None else None


def _own_process() -> bool:
    """Whether this process is the ``kedro``/``rlpipe`` command itself (not a test runner or notebook that
    invoked the command in-process)."""
    import os

    return os.path.basename(sys.argv[0]) in ("kedro", "rlpipe", "__main__.py") and "pytest" not in sys.modules


def _exit_now(code: int) -> None:
    """End a finished run without the interpreter's teardown of every module and object (1.5 s here, mostly
    XLA's and the checkpoint library's native state), after what an exit must do: the ``atexit`` functions
    (logging, MLflow, JAX's distributed shutdown) and flushed output. Everything the run wrote is closed by then."""
    import atexit
    import os

    atexit._run_exitfuncs()  # noqa: SLF001 - the documented exit path minus the teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


run = click.Command(
    "run", callback=_run, help=kedro_run.help, short_help=kedro_run.short_help,
    params=[*kedro_run.params,
            click.Option(["--verbose", "-v"], is_flag=True, default=False,
                         help="Everything: Kedro's full logging, third-party warnings, tracebacks of config errors "
                              "(also RLPIPE_VERBOSE=1).")])
cli.add_command(run)
