"""What a denser evaluation grid costs the default SAC run: its train stage (the compiled training with its
periodic evaluations, checkpoints and the final evaluation; not the stages before and after, which the grid does
not touch) timed in this process with the old grid (an evaluation every 5,000 env steps: 3 in the run) and the new
one (``conf/base/parameters_sac.yml``'s, every 1,000: 11), alternating, and the ratio of their medians.

    python benchmarks/eval_grid.py [--pairs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from rlpipe.rl import run

ROOT = Path(__file__).resolve().parents[1]
OLD_EVERY = 5_000


def default_raw() -> dict:
    raw = yaml.safe_load((ROOT / "conf/base/parameters_sac.yml").read_text())["sac"]
    raw["tracking"] = {**raw.get("tracking", {}), "registered_model_name": None}
    return raw


def time_train_stage(raw: dict, eval_every: int) -> tuple[float, float, float, int]:
    """The train stage of ``raw`` with ``eval_every``: its wall-clock and CPU seconds (all threads of this process:
    less sensitive than the wall clock to other work on the machine), the seconds its evaluations took, and how
    many evaluations its history has."""
    config = run.validated_config("sac", {**raw, "train": {**raw["train"], "eval_every_env_steps": eval_every}})
    with tempfile.TemporaryDirectory(prefix="eval-grid-") as root:
        prepared = run.prepare(config)
        started, cpu = time.perf_counter(), time.process_time()
        trained = run.train_agent(config, prepared.state, prepared.lineage, run.find_resume(config, root),
                                  prepared.scenarios_train, prepared.scenarios_eval, prepared.device_data, root=root)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    history = trained.history
    return seconds, cpu, float(history["eval_seconds"].max()), int(history["eval_return_mean"].notna().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    pairs = parser.parse_args().pairs
    raw = default_raw()
    new_every = int(raw["train"]["eval_every_env_steps"])
    times: dict[int, list[tuple[float, float, float]]] = {OLD_EVERY: [], new_every: []}
    for pair in range(pairs):
        for every in ((OLD_EVERY, new_every) if pair % 2 == 0 else (new_every, OLD_EVERY)):
            seconds, cpu, evals, evaluations = time_train_stage(raw, every)
            times[every].append((seconds, cpu, evals))
            print(f"pair {pair + 1}: eval every {every:>5} env steps: {evaluations:>2} evaluations, train stage "
                  f"{seconds:6.2f} s wall, {cpu:6.2f} s CPU, of which evaluations {evals:5.2f} s", flush=True)
    for i, what in enumerate(("wall", "CPU")):
        old, new = (statistics.median(t[i] for t in times[every]) for every in (OLD_EVERY, new_every))
        print(f"median train stage ({what}): old grid (every {OLD_EVERY}) {old:.2f} s, new grid (every {new_every}) "
              f"{new:.2f} s, ratio new/old {new / old:.3f}")

if __name__ == "__main__":
    main()
