"""More seeds for case 8's return comparison: SAC on HalfCheetah-v5 after 50k env steps, ours against
Stable-Baselines3, return only (the runs go two at a time, so their speed figures are not comparable: case 8 in
``run.py`` is the speed measurement, alternating one run at a time).

Each run is the same command as case 8's (``ours/sac.py`` / ``peers/sb3_sac.py --case halfcheetah --seed k --steps
50000 --eval-episodes 10``, one process each, SB3 on one torch thread); both sides are deterministic per seed, so
running two at once changes only their wall time. The report pools these with the seeds of a case-8 results file
(``--with``) and gives, per side, the mean and IQM with their 95% bootstrap intervals (``rlpipe.rl.statistics``,
rliable's definitions) and the 95% bootstrap interval of the difference of the means (each side resampled on its
own). "Not below SB3's" is then a statement with its uncertainty, not a comparison of two medians of a few runs.

    .venv/bin/python benchmarks/halfcheetah_returns.py --seeds 4-9 --workers 2 \
        --with benchmarks/results/2026-11-23T13.14.04Z.json

Writes ``benchmarks/results/<UTC time>-halfcheetah-returns.{md,json}`` (every run's JSON line included);
``--runs DIR`` summarises the ``{ours,sb3}-<seed>.json`` files of an earlier invocation instead of running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from rlpipe.rl.statistics import BOOTSTRAP_REPS, aggregate  # noqa: E402

SIDES = {"ours": (ROOT / ".venv/bin/python", "benchmarks/ours/sac.py"),
         "sb3": (ROOT / ".venv-peers/bin/python", "benchmarks/peers/sb3_sac.py")}


def seed_list(text: str) -> list[int]:
    """``4-9`` or ``4,5,7``."""
    if "-" in text:
        low, high = (int(x) for x in text.split("-"))
        return list(range(low, high + 1))
    return [int(x) for x in text.split(",")]


def run_all(seeds: list[int], workers: int, folder: Path, steps: int) -> None:
    """Every (side, seed) run once, ``workers`` at a time; each run's last stdout line to ``<side>-<seed>.json``."""
    todo = [(side, seed) for side in ("sb3", "ours") for seed in seeds]  # the long SB3 runs first
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                side, seed = todo.pop(0)
            python, script = SIDES[side]
            started = time.perf_counter()
            proc = subprocess.run([str(python), str(ROOT / script), "--case", "halfcheetah", "--seed", str(seed),
                                   "--steps", str(steps), "--eval-episodes", "10"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=3 * 3600)
            if proc.returncode != 0:
                failures.append(f"{side} seed {seed}: exit status {proc.returncode}\n{proc.stderr[-2000:]}")
                continue
            (folder / f"{side}-{seed}.json").write_text(proc.stdout.strip().splitlines()[-1] + "\n")
            print(f"  {side} seed {seed}: return {json.loads(proc.stdout.strip().splitlines()[-1])['eval_return']:,.0f}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit("runs failed:\n" + "\n".join(failures))


def collected(folder: Path | None, case8: Path | None, case8_sides: tuple[str, ...] = ("ours", "sb3")
              ) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {"ours": {}, "sb3": {}}
    if case8 is not None:
        sides = json.loads(case8.read_text())["cases"]["8"]["halfcheetah"]["runs"]
        for side, key in (("ours", "ours"), ("sb3", "theirs")):
            if side not in case8_sides:
                continue
            for r in sides[key]:
                runs[side][int(r["seed"])] = {**r, "source": case8.name}
    if folder is not None:
        for side in runs:
            for path in sorted(folder.glob(f"{side}-*.json")):
                r = json.loads(path.read_text())
                seed = int(r["seed"])
                if seed in runs[side]:
                    raise SystemExit(f"{path}: seed {seed} is already in {runs[side][seed]['source']}")
                runs[side][seed] = {**r, "source": folder.name}
    return runs


def difference_ci(ours: np.ndarray, theirs: np.ndarray, seed: int = 0, reps: int = BOOTSTRAP_REPS) -> tuple:
    """95% percentile bootstrap interval of mean(ours) - mean(theirs), each side resampled with replacement."""
    rng = np.random.RandomState(seed)
    a = ours[rng.randint(0, ours.size, (reps, ours.size))].mean(axis=1)
    b = theirs[rng.randint(0, theirs.size, (reps, theirs.size))].mean(axis=1)
    low, high = np.percentile(a - b, [2.5, 97.5])
    return float(low), float(high)


def report(runs: dict[str, dict[int, dict]], steps: int) -> tuple[str, dict]:
    returns = {side: np.asarray([runs[side][s]["eval_return"] for s in sorted(runs[side])]) for side in runs}
    agg = {side: aggregate(returns[side]) for side in runs}
    low, high = difference_ci(returns["ours"], returns["sb3"])
    diff = float(returns["ours"].mean() - returns["sb3"].mean())
    verdict = ("below SB3's (the whole interval of the difference is under 0)" if high < 0 else
               "above SB3's (the whole interval is over 0)" if low > 0 else
               "not distinguishable from SB3's at these seeds (the interval of the difference holds 0)")
    fmt = lambda x: f"{x:,.0f}"  # noqa: E731
    lines = [f"# HalfCheetah-v5, SAC, eval return after {steps:,} env steps: more seeds", "",
             "Deterministic eval return over 10 episodes per run, identical hyperparameters (conf/sac_halfcheetah; "
             "SB3 2.9.2 on one torch thread). 95% percentile bootstrap intervals, 50,000 resamples.", "",
             "| | runs | mean [95% CI] | IQM [95% CI] | min | max |", "| --- | --- | --- | --- | --- | --- |"]
    for side, name in (("ours", "ours"), ("sb3", "Stable-Baselines3")):
        a = agg[side]
        lines.append(f"| {name} | {a['runs']} | {fmt(a['mean'])} [{fmt(a['mean_ci_low'])}, {fmt(a['mean_ci_high'])}] "
                     f"| {fmt(a['iqm'])} [{fmt(a['iqm_ci_low'])}, {fmt(a['iqm_ci_high'])}] | {fmt(a['min'])} | "
                     f"{fmt(a['max'])} |")
    lines += ["", f"Difference of the means, ours − SB3: {diff:+,.0f} [{low:+,.0f}, {high:+,.0f}]: "
              f"ours is {verdict}.",
              "", "| seed | ours | SB3 | from |", "| --- | --- | --- | --- |"]
    for s in sorted(set(runs["ours"]) | set(runs["sb3"])):
        o, t = runs["ours"].get(s), runs["sb3"].get(s)
        lines.append(f"| {s} | {fmt(o['eval_return']) if o else '–'} | {fmt(t['eval_return']) if t else '–'} | "
                     f"{(o or t)['source']} |")
    data = {"steps": steps, "aggregate": agg, "difference_of_means": diff, "difference_ci": [low, high],
            "runs": {side: [runs[side][s] for s in sorted(runs[side])] for side in runs}}
    return "\n".join(lines) + "\n", data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="4-9", help="seeds to run on each side: 4-9 or 4,5,6")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--with", dest="case8", type=Path, help="a benchmarks/results/*.json holding case 8's runs")
    parser.add_argument("--with-sides", default="ours,sb3",
                        help="which sides to take from --with (e.g. sb3, when the folder holds an experiment's "
                        "own runs of ours)")
    parser.add_argument("--title", default="", help="a line under the heading saying what this invocation compares")
    parser.add_argument("--runs", type=Path, help="summarise this folder's runs instead of running")
    args = parser.parse_args()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H.%M.%SZ")
    results = ROOT / "benchmarks" / "results"
    folder = args.runs
    if folder is None:
        folder = results / f"{stamp}-halfcheetah-runs"
        folder.mkdir(parents=True)
        run_all(seed_list(args.seeds), args.workers, folder, args.steps)
    text, data = report(collected(folder, args.case8, tuple(args.with_sides.split(","))), args.steps)
    if args.title:
        head, rest = text.split("\n", 1)
        text = f"{head}\n\n{args.title}\n{rest}"
        data["title"] = args.title
    (results / f"{stamp}-halfcheetah-returns.md").write_text(text)
    (results / f"{stamp}-halfcheetah-returns.json").write_text(json.dumps(data, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
