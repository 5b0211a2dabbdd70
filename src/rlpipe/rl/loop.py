"""The host side of training, shared by every algorithm.

The training core supplies one compiled call that advances the run state by ``n`` iterations and returns
metrics; this loop calls it once per log interval and, between calls, records history, reports progress,
evaluates, checkpoints and checks early stopping. Nothing here runs per environment step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlpipe.rl import mesh
from rlpipe.rl.early_stopping import EarlyStopping

ChunkFn = Callable[[Any, int], tuple[Any, dict[str, Any]]]  # (state, iterations) -> (state, replicated metrics)
# state -> per-scenario (returns, lengths), or (returns, lengths, {env metric: per-scenario values})
EvaluateFn = Callable[[Any], tuple]
ProgressFn = Callable[[dict[str, Any]], None]
CheckpointFn = Callable[[int, Any, dict[str, Any]], None]  # (env steps, state tree, loop progress)


ADAPT_PREFIX = "curriculum."  # the history columns an ``adapt`` step logs


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf; the message names the iteration and the quantities."""


@dataclass
class Resume:
    """A checkpointed run: its state tree (numpy, as loaded), the device count it was written on, and where the
    loop stood (iteration count, history so far, early-stopping state)."""

    tree: dict[str, Any]
    num_devices: int
    iteration: int
    env_steps: int
    history: list[dict[str, Any]]
    stopper: dict[str, Any] | None
    curve: list[dict[str, Any]] = ()  # type: ignore[assignment]

    @staticmethod
    def from_checkpoint(tree: dict[str, Any], meta: dict[str, Any]) -> Resume:
        progress = meta["progress"]
        return Resume(tree, int(meta["num_devices"]), int(progress["iteration"]), int(meta["env_steps"]),
                      list(progress["history"]), progress.get("stopper"), list(progress.get("curve") or []))


@dataclass(frozen=True)
class Schedule:
    total_iters: int
    iters_per_chunk: int
    env_steps_per_iter: int
    grad_steps_per_iter: int
    env_steps_before: int  # env steps already taken when training starts (the SAC buffer prefill)
    eval_every_env_steps: int  # 0: no evaluation during training
    checkpoint_every_env_steps: int

    @staticmethod
    def build(train_config: Any, env_steps_per_iter: int, grad_steps_per_iter: int,
              env_steps_before: int = 0) -> Schedule:
        t = train_config
        return Schedule(
            total_iters=max(1, math.ceil((t.total_env_steps - env_steps_before) / env_steps_per_iter)),
            iters_per_chunk=max(1, t.log_every_env_steps // env_steps_per_iter),
            env_steps_per_iter=env_steps_per_iter,
            grad_steps_per_iter=grad_steps_per_iter,
            env_steps_before=env_steps_before,
            eval_every_env_steps=t.eval_every_env_steps,
            checkpoint_every_env_steps=t.checkpoint_every_env_steps,
        )

    @property
    def total_env_steps(self) -> int:
        return self.env_steps_before + self.total_iters * self.env_steps_per_iter


def _next_multiple(value: int, every: int) -> int:
    return (value // every + 1) * every


def run(schedule: Schedule, state: Any, chunk: ChunkFn, *, evaluate: EvaluateFn | None = None,
        checkpoint_tree: Callable[[Any], Any] = lambda s: s, on_progress: ProgressFn | None = None,
        on_checkpoint: CheckpointFn | None = None, stopper: EarlyStopping | None = None,
        resume: Resume | None = None, periodic: tuple[tuple[int, Callable[[int, Any], None]], ...] = (),
        adapt: tuple[int, Callable[[Any], tuple[Any, dict[str, float]]]] | None = None) -> tuple[Any, list[dict[str, Any]], dict[str, np.ndarray] | None, list[dict[str, Any]]]:
    """Advance ``state`` chunk by chunk to ``schedule.total_iters``; returns the state, one history row a chunk, the
    evaluation of the final state (``{"returns", "lengths"}`` per scenario; None without ``evaluate``), and the
    curve: the points the chunks recorded inside (``trace/...`` metrics, see ``rlpipe.rl.training``), one row each
    with its env steps, the training metrics averaged over its iterations and the return of the episodes that
    ended in them (NaN where none did).

    ``evaluate(state)`` returns per-scenario returns and lengths; it runs on a regular grid, at the first iteration
    at or past every multiple of ``eval_every_env_steps`` (a chunk ends there), and on the final state (rows
    without an evaluation carry NaN). ``stopper`` may end training early, in which case the final
    row has ``early_stopped = 1``. With ``resume``, ``state`` is the restored state and the loop carries on from
    where the checkpoint was taken. A chunk whose losses or parameters are not finite raises
    :class:`NonFiniteError` before anything of it is checkpointed. Each ``(every, fn)`` of ``periodic`` calls
    ``fn(env_steps, state)`` at the first chunk end at or past every multiple of ``every`` env steps, and at the end.
    ``adapt = (every, fn)`` changes the state between chunks: ``fn(state) -> (state, logged)`` at every multiple of
    ``every`` env steps (chunks end on that grid too; not after the last chunk), before the evaluation and the
    checkpoint of that chunk end; ``logged`` (names starting with ``ADAPT_PREFIX``) goes into the row (NaN in rows
    without an update).
    """
    s = schedule
    history: list[dict[str, Any]] = list(resume.history) if resume else []
    curve: list[dict[str, Any]] = list(resume.curve) if resume else []
    done_iters = resume.iteration if resume else 0
    if resume and stopper is not None and resume.stopper is not None:
        stopper.load_state_dict(resume.stopper)
    next_eval = _next_multiple(s.env_steps_before + done_iters * s.env_steps_per_iter, s.eval_every_env_steps or 1)
    next_checkpoint = _next_multiple(s.env_steps_before + done_iters * s.env_steps_per_iter,
                                     s.checkpoint_every_env_steps)
    train_seconds = history[-1]["train_seconds"] if history else 0.0
    eval_seconds = history[-1]["eval_seconds"] if history else 0.0
    final = None
    start = s.env_steps_before + done_iters * s.env_steps_per_iter
    # env metrics of the periodic evaluations (history columns eval_env.<name>), known after the first one
    metric_names: list[str] = [k.removeprefix("eval_env.") for k in (history[-1] if history else {})
                               if k.startswith("eval_env.")]
    next_periodic = [_next_multiple(start, every) for every, _ in periodic]
    next_adapt = _next_multiple(start, adapt[0]) if adapt is not None else None
    adapt_names = [k for k in (history[-1] if history else {}) if k.startswith(ADAPT_PREFIX)]

    def evaluate_now() -> tuple[float, float]:
        nonlocal eval_seconds, final
        eval_started = time.perf_counter()
        returns, lengths, *extra = evaluate(state)
        eval_seconds += time.perf_counter() - eval_started
        final = {"returns": np.asarray(returns), "lengths": np.asarray(lengths),
                 "metrics": {k: np.asarray(v) for k, v in (extra[0] if extra else {}).items()}}
        return float(np.mean(returns)), float(np.std(returns))

    def seed_columns(per_seed: dict[str, np.ndarray]) -> dict[str, float]:
        """A multi-seed run's own columns: each seed's training return and, at evaluations, its eval mean."""
        out = {}
        if "episode_return" in per_seed:
            for i, (value, count) in enumerate(zip(per_seed["episode_return"], per_seed["episodes"])):
                out[f"seed{i}.episode_return"] = float(value) if count > 0 else float("nan")
        if final is not None and final["returns"].ndim == 2:
            for i, value in enumerate(final["returns"].mean(axis=1)):
                out[f"seed{i}.eval_return_mean"] = float(value)
        elif "episode_return" in per_seed:
            out.update({f"seed{i}.eval_return_mean": float("nan") for i in range(len(per_seed["episode_return"]))})
        return out

    while done_iters < s.total_iters:
        n = min(s.iters_per_chunk, s.total_iters - done_iters)
        if evaluate is not None and s.eval_every_env_steps:  # end the chunk at the next point of the eval grid
            now = s.env_steps_before + done_iters * s.env_steps_per_iter
            n = min(n, max(1, math.ceil((next_eval - now) / s.env_steps_per_iter)))
        if adapt is not None:  # and at the next point of the adaptation grid
            now = s.env_steps_before + done_iters * s.env_steps_per_iter
            n = min(n, max(1, math.ceil((next_adapt - now) / s.env_steps_per_iter)))
        started = time.perf_counter()
        state, metrics = chunk(state, n)
        metrics = mesh.host_copy(metrics)
        trace = {k.removeprefix("trace/"): np.asarray(metrics.pop(k)) for k in list(metrics) if k.startswith("trace/")}
        per_seed = {k.removeprefix("seeds/"): np.asarray(metrics.pop(k)) for k in list(metrics)
                    if k.startswith("seeds/")}
        metrics = {k: float(v) for k, v in metrics.items()}
        _raise_if_nonfinite(metrics, s, done_iters, n)
        elapsed = time.perf_counter() - started
        train_seconds += elapsed
        done_iters += n
        env_steps = s.env_steps_before + done_iters * s.env_steps_per_iter
        last = done_iters == s.total_iters

        adapted: dict[str, float] = {}
        if adapt is not None and env_steps >= next_adapt and not last:
            state, adapted = adapt[1](state)
            adapt_names = list(adapted)
            next_adapt = _next_multiple(env_steps, adapt[0])
        adapted = {name: adapted.get(name, float("nan")) for name in adapt_names}

        eval_mean = eval_std = float("nan")
        final = None
        if evaluate is not None and ((s.eval_every_env_steps and env_steps >= next_eval) or last):
            eval_mean, eval_std = evaluate_now()
            next_eval = _next_multiple(env_steps, s.eval_every_env_steps or 1)
            metric_names = list(final["metrics"])
        eval_metrics = {f"eval_env.{k}": float(np.mean(final["metrics"][k])) if final is not None else float("nan")
                        for k in metric_names}
        episodes = metrics.pop("episodes", 0.0)
        row = {
            "env_steps": env_steps,
            "grad_steps": done_iters * s.grad_steps_per_iter,
            **metrics,
            "episode_return": metrics.get("episode_return", float("nan")) if episodes else float("nan"),
            "episode_length": metrics.get("episode_length", float("nan")) if episodes else float("nan"),
            "episodes": episodes,
            "eval_return_mean": eval_mean,
            "eval_return_std": eval_std,
            **eval_metrics,
            **seed_columns(per_seed),
            **adapted,
            "env_steps_per_s": n * s.env_steps_per_iter / elapsed,
            "grad_steps_per_s": n * s.grad_steps_per_iter / elapsed,
            "train_seconds": train_seconds,  # compiled training calls only: no compile, eval or checkpoint time
            "eval_seconds": eval_seconds,
        }
        stop = False
        if stopper is not None:
            stop = stopper.update(row)
            row.update(stopper.status())
        if stop and evaluate is not None and final is None:  # stopped on training returns: evaluate the final state
            row["eval_return_mean"], row["eval_return_std"] = evaluate_now()
            row["eval_seconds"] = eval_seconds
            row.update(seed_columns(per_seed))
        history.append(row)
        if trace:
            curve.extend(_curve_rows(trace, s, done_iters - n))
        if on_progress:
            on_progress({**row, "total_env_steps": s.total_env_steps})
        if on_checkpoint and (env_steps >= next_checkpoint or last or stop):
            progress = {"iteration": done_iters, "history": history, "curve": curve,
                        "stopper": stopper.state_dict() if stopper is not None else None}
            on_checkpoint(env_steps, checkpoint_tree(state), progress)
            next_checkpoint = _next_multiple(env_steps, s.checkpoint_every_env_steps)
        for i, (every, fn) in enumerate(periodic):
            if env_steps >= next_periodic[i] or last or stop:
                fn(env_steps, state)
                next_periodic[i] = _next_multiple(env_steps, every)
        if stop:
            break
    if evaluate is not None and final is None:  # resumed from the final checkpoint: nothing left to train
        evaluate_now()
    return state, history, final, curve


def _curve_rows(trace: dict[str, np.ndarray], s: Schedule, first_iter: int) -> list[dict[str, Any]]:
    """The points one chunk recorded (starting after ``first_iter`` iterations), one row each: env and gradient
    steps at the point's last iteration, each metric's mean over its iterations, and the mean return of the episodes
    that ended in them (NaN if none; each seed's as ``seed<k>.episode_return`` in a multi-seed run)."""
    count = trace.pop("count")
    returns, episodes = trace.pop("episode_return_sum"), trace.pop("episodes")
    seed_returns, seed_episodes = trace.pop("seeds/episode_return_sum", None), trace.pop("seeds/episodes", None)
    rows, done = [], first_iter
    for j in np.flatnonzero(count > 0):
        done += int(count[j])
        row = {"env_steps": s.env_steps_before + done * s.env_steps_per_iter,
               "grad_steps": done * s.grad_steps_per_iter,
               **{k: float(v[j]) for k, v in trace.items()},
               "episode_return": float(returns[j] / episodes[j]) if episodes[j] > 0 else float("nan"),
               "episodes": float(episodes[j])}
        if seed_returns is not None:
            for k in range(len(seed_returns)):
                row[f"seed{k}.episode_return"] = (float(seed_returns[k, j] / seed_episodes[k, j])
                                                  if seed_episodes[k, j] > 0 else float("nan"))
        rows.append(row)
    return rows


def _raise_if_nonfinite(metrics: dict[str, float], s: Schedule, done_iters: int, n: int) -> None:
    flags = {k.split("/", 1)[1]: metrics.pop(k) for k in list(metrics) if k.startswith("nonfinite/")}
    at = int(metrics.pop("nonfinite_iteration", -1))
    bad = [name for name, flag in flags.items() if flag > 0]
    if not bad:
        return
    if at < 0:  # only the parameters at the end of the chunk: somewhere in this chunk
        where = f"between iterations {done_iters + 1} and {done_iters + n}"
    else:
        where = f"at iteration {at} (about {s.env_steps_before + at * s.env_steps_per_iter:,} env steps)"
    raise NonFiniteError(f"training diverged {where}: {', '.join(bad)} not finite. Lower the learning rate or check "
                         "the environment's rewards; nothing of this chunk was checkpointed")
