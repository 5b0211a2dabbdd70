"""Training progress for people: a live bar on a terminal, plain periodic lines elsewhere (CI, log files)."""

from __future__ import annotations

import math
import os
import sys
from typing import IO, Any


def describe(row: dict[str, Any], labels: tuple[tuple[str, str], ...] = ()) -> str:
    """One progress line's content: rate, returns, and the algorithm's own metrics as ``labels`` names them."""
    parts = [f"{row['env_steps_per_s']:,.0f} steps/s"]
    if not math.isnan(row.get("episode_return", float("nan"))):
        parts.append(f"return {row['episode_return']:.1f}")
    if not math.isnan(row.get("eval_return_mean", float("nan"))):
        parts.append(f"eval {row['eval_return_mean']:.1f}")
    for name, label in labels:
        if name in row:
            parts.append(f"{label} {row[name]:.3g}")
    return " | ".join(parts)


class TrainingProgress:
    """Use as a context manager; ``update(row)`` after every compiled call with ``env_steps``/``total_env_steps``.
    ``labels`` are the algorithm's (metric, short label) pairs; ``quiet`` shows nothing (the other processes of a
    multi-process run: process 0 speaks for all)."""

    def __init__(self, label: str, total: int, labels: tuple[tuple[str, str], ...] = (),
                 stream: IO[str] | None = None, live: bool | None = None, quiet: bool = False):
        self.label, self.total, self.labels, self.quiet = label, total, labels, quiet
        self.stream = stream or sys.stderr
        if live is None:
            live = self.stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")
        self.live = live
        self._progress = None

    def __enter__(self) -> TrainingProgress:
        if self.live and not self.quiet:
            import rich
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("env steps | ETA"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), console=rich.get_console())
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, info="compiling ...")
        return self

    def update(self, row: dict[str, Any]) -> None:
        if self.quiet:
            return
        info = describe(row, self.labels)
        if self._progress is not None:
            self._progress.update(self._task, completed=row["env_steps"], info=info)
            return
        done = row["env_steps"]
        rate = row["env_steps_per_s"]
        eta = (row.get("total_env_steps", self.total) - done) / rate if rate > 0 else float("nan")
        total = row.get("total_env_steps", self.total)
        print(f"[{self.label}] env steps {done:,}/{total:,} ({100 * done / total:.0f}%) | ETA {eta:.0f} s | "
              f"{info}", file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
