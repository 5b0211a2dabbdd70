"""Training progress for people: a live bar on a terminal, plain periodic lines elsewhere (CI, log files)."""

from __future__ import annotations

import math
import os
import sys
from typing import IO, Any


def describe(row: dict[str, Any]) -> str:
    """One progress line's content: rate, returns, losses, temperature if the algorithm has one."""
    parts = [f"{row['env_steps_per_s']:,.0f} steps/s"]
    if not math.isnan(row.get("episode_return", float("nan"))):
        parts.append(f"return {row['episode_return']:.1f}")
    if not math.isnan(row.get("eval_return_mean", float("nan"))):
        parts.append(f"eval {row['eval_return_mean']:.1f}")
    for name, label in (("critic_loss", "critic"), ("actor_loss", "actor"), ("value_loss", "value"),
                        ("policy_loss", "policy"), ("temperature", "alpha")):
        if name in row:
            parts.append(f"{label} {row[name]:.3g}")
    return " | ".join(parts)


class TrainingProgress:
    """Use as a context manager; ``update(row)`` after every compiled call with ``env_steps``/``total_env_steps``."""

    def __init__(self, label: str, total: int, stream: IO[str] | None = None, live: bool | None = None):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        if live is None:
            live = self.stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")
        self.live = live
        self._progress = None

    def __enter__(self) -> TrainingProgress:
        if self.live:
            import rich
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("env steps | ETA"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), console=rich.get_console())
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, info="compiling ...")
        return self

    def update(self, row: dict[str, Any]) -> None:
        info = describe(row)
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
