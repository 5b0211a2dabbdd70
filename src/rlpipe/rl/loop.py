"""The host side of training, shared by every algorithm.

The training core supplies one compiled call that advances the run state by ``n`` iterations and returns
metrics; this loop calls it once per log interval and, between calls, records history, reports progress,
evaluates, checkpoints and checks early stopping. Nothing here runs per environment step.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlpipe.rl import mesh, seeds
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.schedule import Schedule

logger = logging.getLogger(__name__)

ChunkFn = Callable[[Any, int], tuple[Any, dict[str, Any]]]  # (state, iterations) -> (state, replicated metrics)
# state -> per-scenario (returns, lengths), or (returns, lengths, {env metric: per-scenario values})
EvaluateFn = Callable[[Any], tuple]
ProgressFn = Callable[[dict[str, Any]], None]
CheckpointFn = Callable[[int, Any, dict[str, Any]], None]  # (env steps, state tree, loop progress)


ADAPT_PREFIX = "curriculum."  # the history columns an ``adapt`` step logs
# The key of a progress row holding the curve points its chunk recorded, so a listener can follow the whole history
# (``rlpipe.rl.training_run.history_table`` of the row and its points) as it grows, not only one row per chunk.
CURVE_POINTS = "curve_points"


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
    episodes: list[dict[str, Any]] = ()  # type: ignore[assignment]

    @staticmethod
    def from_checkpoint(tree: dict[str, Any], meta: dict[str, Any]) -> Resume:
        progress = meta["progress"]
        return Resume(tree, int(meta["num_devices"]), int(progress["iteration"]), int(meta["env_steps"]),
                      list(progress["history"]), progress.get("stopper"), list(progress.get("curve") or []),
                      list(progress.get("episodes") or []))


def _next_multiple(value: int, every: int) -> int:
    return (value // every + 1) * every


@dataclass
class _Progress:
    """Where the host loop stands: iterations done, what it recorded, the seconds spent, and the env steps at which
    it next evaluates, checkpoints, adapts and calls each periodic function."""

    done_iters: int
    history: list[dict[str, Any]]
    curve: list[dict[str, Any]]
    episodes: list[dict[str, Any]]  # a row per finished training episode, where the chunks log them
    train_seconds: float
    eval_seconds: float
    next_eval: int
    next_checkpoint: int
    next_periodic: list[int]
    next_adapt: int | None
    metric_names: list[str]  # env metrics of the periodic evaluations (columns eval_env.<name>), once known
    adapt_names: list[str]  # the columns an adapt step logs, once known
    final: dict[str, Any] | None = None  # the latest evaluation, if the current chunk end had one

    @staticmethod
    def start(s: Schedule, resume: Resume | None, periodic, adapt) -> _Progress:
        """A fresh loop's, or where the checkpoint of ``resume`` left it."""
        history = list(resume.history) if resume else []
        last = history[-1] if history else {}
        done = resume.iteration if resume else 0
        now = s.env_steps_after(done)
        return _Progress(
            done_iters=done, history=history, curve=list(resume.curve) if resume else [],
            episodes=list(resume.episodes) if resume else [],
            train_seconds=last.get("train_seconds", 0.0), eval_seconds=last.get("eval_seconds", 0.0),
            next_eval=_next_multiple(now, s.eval_every_env_steps or 1),
            next_checkpoint=_next_multiple(now, s.checkpoint_every_env_steps),
            next_periodic=[_next_multiple(now, every) for every, _ in periodic],
            next_adapt=_next_multiple(now, adapt[0]) if adapt is not None else None,
            metric_names=[k.removeprefix("eval_env.") for k in last if k.startswith("eval_env.")],
            adapt_names=[k for k in last if k.startswith(ADAPT_PREFIX)])

    def evaluate(self, evaluate: EvaluateFn, state: Any) -> tuple[float, float]:
        """Evaluate ``state`` now (kept as ``final``): the mean and spread of its returns."""
        started = time.perf_counter()
        returns, lengths, *extra = evaluate(state)
        self.eval_seconds += time.perf_counter() - started
        self.final = {"returns": np.asarray(returns), "lengths": np.asarray(lengths),
                      "metrics": {k: np.asarray(v) for k, v in (extra[0] if extra else {}).items()}}
        return float(np.mean(returns)), float(np.std(returns))


def run(schedule: Schedule, state: Any, chunk: ChunkFn, *, evaluate: EvaluateFn | None = None,
        checkpoint_tree: Callable[[Any], Any] = lambda s: s, on_progress: ProgressFn | None = None,
        on_checkpoint: CheckpointFn | None = None, stopper: EarlyStopping | None = None,
        resume: Resume | None = None, periodic: tuple[tuple[int, Callable[[int, Any], None]], ...] = (),
        adapt: tuple[int, Callable[[Any], tuple[Any, dict[str, float]]]] | None = None,
        ) -> tuple[Any, list[dict[str, Any]], dict[str, np.ndarray] | None, list[dict[str, Any]],
                   list[dict[str, Any]]]:
    """Advance ``state`` chunk by chunk to ``schedule.total_iters``; returns the state, one history row a chunk, the
    evaluation of the final state (``{"returns", "lengths"}`` per scenario; None without ``evaluate``), the
    curve: the points the chunks recorded inside (``trace/...`` metrics, see ``rlpipe.rl.chunk``), one row each
    with its env steps, the training metrics averaged over its iterations and the return of the episodes that
    ended in them (NaN where none did), and the episodes: a row per finished training episode, where the chunks
    log them (see ``episode_rows``).

    ``evaluate(state)`` returns per-scenario returns and lengths; it runs on a regular grid, at the first iteration
    at or past every multiple of ``eval_every_env_steps`` (a chunk ends there), and on the final state (rows
    without an evaluation carry NaN). ``on_progress`` gets each chunk's row with ``total_env_steps`` and the curve
    points the chunk recorded (``CURVE_POINTS``). ``stopper`` may end training early, in which case the final
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
    p = _Progress.start(s, resume, periodic, adapt)
    if resume and stopper is not None and resume.stopper is not None:
        stopper.load_state_dict(resume.stopper)
    while p.done_iters < s.total_iters:
        n = _chunk_length(s, p, evaluate is not None, adapt is not None)
        started = time.perf_counter()
        state, metrics = chunk(state, n)
        metrics, trace, per_seed = _host_metrics(metrics)
        _raise_if_nonfinite(metrics, s, p.done_iters, n)
        elapsed = time.perf_counter() - started
        p.train_seconds += elapsed
        p.done_iters += n
        env_steps = s.env_steps_after(p.done_iters)
        last = p.done_iters == s.total_iters

        adapted: dict[str, float] = {}
        if adapt is not None and env_steps >= p.next_adapt and not last:
            state, adapted = adapt[1](state)
            p.adapt_names = list(adapted)
            p.next_adapt = _next_multiple(env_steps, adapt[0])
        p.final = None
        evaluated = None
        if evaluate is not None and ((s.eval_every_env_steps and env_steps >= p.next_eval) or last):
            evaluated = p.evaluate(evaluate, state)
            p.next_eval = _next_multiple(env_steps, s.eval_every_env_steps or 1)
            p.metric_names = list(p.final["metrics"])
        row = _row(s, p, n, elapsed, metrics, per_seed, evaluated,
                   {name: adapted.get(name, float("nan")) for name in p.adapt_names})
        stop = False
        if stopper is not None:
            stop = stopper.update(row)
            row.update(stopper.status())
        if stop and evaluate is not None and p.final is None:  # stopped on training returns: evaluate the final state
            row["eval_return_mean"], row["eval_return_std"] = p.evaluate(evaluate, state)
            row["eval_seconds"] = p.eval_seconds
            row.update(seeds.history_columns(per_seed, p.final))
        p.history.append(row)
        points, episodes = _curve_rows(trace, s, p.done_iters - n) if trace else ([], [])
        p.curve.extend(points)
        p.episodes.extend(episodes)
        _report(s, p, row, state, last or stop, on_progress=on_progress, on_checkpoint=on_checkpoint,
                checkpoint_tree=checkpoint_tree, stopper=stopper, periodic=periodic, points=points)
        if stop:
            break
    if evaluate is not None and p.final is None:  # resumed from the final checkpoint: nothing left to train
        p.evaluate(evaluate, state)
    return state, p.history, p.final, p.curve, p.episodes


def _chunk_length(s: Schedule, p: _Progress, evaluates: bool, adapts: bool) -> int:
    """Iterations of the next chunk: up to ``iters_per_chunk``, ending at the next point of the eval grid and of
    the adaptation grid (at least one)."""
    n = min(s.iters_per_chunk, s.total_iters - p.done_iters)
    now = s.env_steps_after(p.done_iters)
    if evaluates and s.eval_every_env_steps:
        n = min(n, max(1, math.ceil((p.next_eval - now) / s.env_steps_per_iter)))
    if adapts:
        n = min(n, max(1, math.ceil((p.next_adapt - now) / s.env_steps_per_iter)))
    return n


def _host_metrics(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A chunk's metrics on the host: the scalars, the in-chunk trace (``trace/...``) and the per-seed values
    (``seeds/...``), prefixes removed."""
    metrics = mesh.host_copy(metrics)
    trace = {k.removeprefix("trace/"): np.asarray(metrics.pop(k)) for k in list(metrics) if k.startswith("trace/")}
    per_seed = {k.removeprefix(seeds.SEED_PREFIX): np.asarray(metrics.pop(k)) for k in list(metrics)
                if k.startswith(seeds.SEED_PREFIX)}
    return {k: float(v) for k, v in metrics.items()}, trace, per_seed


def _row(s: Schedule, p: _Progress, n: int, elapsed: float, metrics: dict[str, float],
         per_seed: dict[str, np.ndarray], evaluated: tuple[float, float] | None,
         adapted: dict[str, float]) -> dict[str, Any]:
    """The history row of the chunk just done."""
    eval_mean, eval_std = evaluated if evaluated is not None else (float("nan"), float("nan"))
    final = p.final
    eval_metrics = {f"eval_env.{k}": float(np.mean(final["metrics"][k])) if final is not None else float("nan")
                    for k in p.metric_names}
    episodes = metrics.pop("episodes", 0.0)
    return {
        "env_steps": s.env_steps_after(p.done_iters),
        "grad_steps": p.done_iters * s.grad_steps_per_iter,
        **metrics,
        "episode_return": metrics.get("episode_return", float("nan")) if episodes else float("nan"),
        "episode_length": metrics.get("episode_length", float("nan")) if episodes else float("nan"),
        "episodes": episodes,
        "eval_return_mean": eval_mean,
        "eval_return_std": eval_std,
        **eval_metrics,
        **seeds.history_columns(per_seed, final),
        **adapted,
        "env_steps_per_s": n * s.env_steps_per_iter / elapsed,
        "grad_steps_per_s": n * s.grad_steps_per_iter / elapsed,
        "train_seconds": p.train_seconds,  # compiled training calls only: no compile, eval or checkpoint time
        "eval_seconds": p.eval_seconds,
    }


def _report(s: Schedule, p: _Progress, row: dict[str, Any], state: Any, ending: bool, *, on_progress, on_checkpoint,
            checkpoint_tree, stopper, periodic, points: list[dict[str, Any]]) -> None:
    """After a chunk's row: progress (with the chunk's curve ``points`` under ``CURVE_POINTS``), the checkpoint and
    the periodic functions when their grid (or the end, ``ending``) is reached."""
    env_steps = row["env_steps"]
    if on_progress:
        on_progress({**row, "total_env_steps": s.total_env_steps, CURVE_POINTS: points})
    if on_checkpoint and (env_steps >= p.next_checkpoint or ending):
        progress = {"iteration": p.done_iters, "history": p.history, "curve": p.curve, "episodes": p.episodes,
                    "stopper": stopper.state_dict() if stopper is not None else None}
        on_checkpoint(env_steps, checkpoint_tree(state), progress)
        p.next_checkpoint = _next_multiple(env_steps, s.checkpoint_every_env_steps)
    for i, (every, fn) in enumerate(periodic):
        if env_steps >= p.next_periodic[i] or ending:
            fn(env_steps, state)
            p.next_periodic[i] = _next_multiple(env_steps, every)


def _curve_rows(trace: dict[str, np.ndarray], s: Schedule, first_iter: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The points one chunk recorded (starting after ``first_iter`` iterations), one row each: env and gradient
    steps at the point's last iteration, each metric's mean over its iterations, and the mean return of the episodes
    that ended in them (NaN if none; each seed's as ``seed<k>.episode_return`` in a multi-seed run); and with an
    episode log, a row per episode that ended (see ``episode_rows``)."""
    count = trace.pop("count")
    returns, episodes = trace.pop("episode_return_sum"), trace.pop("episodes")
    log = (trace.pop("episode_log"), trace.pop("episode_logged")) if "episode_log" in trace else None
    seed_trace = {k.removeprefix(seeds.SEED_PREFIX): trace.pop(k) for k in list(trace)
                  if k.startswith(seeds.SEED_PREFIX)}
    rows, done = [], first_iter
    for j in np.flatnonzero(count > 0):
        done += int(count[j])
        rows.append({"env_steps": s.env_steps_after(done),
                     "grad_steps": done * s.grad_steps_per_iter,
                     **{k: float(v[j]) for k, v in trace.items()},
                     "episode_return": float(returns[j] / episodes[j]) if episodes[j] > 0 else float("nan"),
                     "episodes": float(episodes[j]),
                     **seeds.curve_columns(seed_trace, j)})
    return rows, episode_rows(*log, s, first_iter) if log else []


EPISODE_ROW = ("env_steps", "episode_return")  # the columns of a finished episode's row


def episode_rows(log: np.ndarray, logged: np.ndarray, s: Schedule, first_iter: int) -> list[dict[str, Any]]:
    """A row per episode a chunk's episode log holds (``log`` [devices, capacity, 2]: return and iterations into
    the chunk when it ended; ``logged`` [devices]: how many ended), in the order they ended: its env steps (the
    step of its last transition) and return."""
    kept = [log[d, :min(int(n), log.shape[1])] for d, n in enumerate(logged)]
    if int(np.sum(logged)) > sum(len(k) for k in kept):
        logger.warning("%d episodes ended in one chunk on a device, more than its log holds (%d): the learning "
                       "curve shows the first %d of each device", int(np.max(logged)), log.shape[1], log.shape[1])
    entries = np.concatenate(kept) if kept else np.zeros((0, 2), np.float32)
    entries = entries[np.argsort(entries[:, 1], kind="stable")]
    start = s.env_steps_after(first_iter)
    return [dict(zip(EPISODE_ROW, (int(round(start + float(when) * s.env_steps_per_iter)), float(value))))
            for value, when in entries]


def _raise_if_nonfinite(metrics: dict[str, float], s: Schedule, done_iters: int, n: int) -> None:
    flags = {k.split("/", 1)[1]: metrics.pop(k) for k in list(metrics) if k.startswith("nonfinite/")}
    at = int(metrics.pop("nonfinite_iteration", -1))
    bad = [name for name, flag in flags.items() if flag > 0]
    if not bad:
        return
    if at < 0:  # only the parameters at the end of the chunk: somewhere in this chunk
        where = f"between iterations {done_iters + 1} and {done_iters + n}"
    else:
        where = f"at iteration {at} (about {s.env_steps_after(at):,} env steps)"
    raise NonFiniteError(f"training diverged {where}: {', '.join(bad)} not finite. Lower the learning rate or check "
                         "the environment's rewards; nothing of this chunk was checkpointed")
