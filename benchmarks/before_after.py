"""Our speed on the working tree against an earlier revision of our own code, in one invocation.

    .venv/bin/python benchmarks/before_after.py --baseline-rev f223cab [--pairs 3] [--no-scaling]

The earlier revision is checked out in a temporary git worktree (removed at the end) and its own benchmark scripts
run against its own ``src/``; every measurement alternates before, after, before, after, ... in fresh processes:

- SAC throughput: gradient steps/s at identical hyperparameters (256x256, batch 256, one env, 3000 steps);
- SAC Pendulum-v1 and PPO CartPole-v1 to their thresholds (-200, 475): training seconds and env steps/s (the same
  seed trains the same bits on both sides when a change keeps them, so the same env steps are timed);
- the scaling sweep of ``run.py``'s case 5 (SAC train node, 1 to 4096 envs on 1 and 2 devices).

A case or sweep point flagged after ``--pairs`` pairs is measured with 6 more pairs, and all its pairs count.

Each figure is the median of the per-pair ratios after/before (> 1: the working tree is faster); a ratio below
``--flag-below`` (0.95) is flagged. Results: ``benchmarks/results/<timestamp>-before-after.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys

from run import (OURS_PY, RESULTS, SCALING_CONFIRM_PAIRS, SCALING_ITERATIONS, baseline_tree, case_scaling, fmt,
                 machine, run_json, spread, stats)

# (label, script and arguments, [(result key, higher is better)], runs per side in each pair)
SPEED_CASES = (
    ("SAC throughput (256x256, batch 256, 1 env)", ["ours/sac.py", "--case", "throughput", "--steps", "3000"],
     [("grad_steps_per_s", True)], 1),
    ("SAC Pendulum-v1 to -200", ["ours/sac.py", "--case", "threshold", "--threshold", "-200", "--eval-every", "1000",
                                 "--eval-episodes", "16", "--max-env-steps", "20000"],
     [("train_seconds_to_threshold", False), ("env_steps_per_s", True)], 1),
    # PPO trains on past 475 to 400k env steps: at 100k its whole training lasts ~0.8 s, and 8 before/after pairs
    # on 2026-12-04 gave per-pair env steps/s ratios of 0.76-1.42x (at 400k, 5 pairs: 0.94-1.04x). It reaches 475
    # after 0.25-0.65 s of training, which swung by +-15% between runs of the same code and seed: each side of a
    # pair is the median of 3 runs
    ("PPO CartPole-v1 to 475", ["ours/ppo.py", "--threshold", "475", "--eval-every", "8192", "--eval-episodes", "16",
                                "--max-env-steps", "400000"],
     [("train_seconds_to_threshold", False), ("env_steps_per_s", True)], 3),
)


def speed_pairs(base: dict, pairs: int, flag_below: float, confirm_pairs: int = SCALING_CONFIRM_PAIRS) -> list[dict]:
    """Each speed case, ``pairs`` pairs (seed 0, 1, ...), before then after (alternating ``runs`` times when a case
    asks for several runs per side: each side's figure is then the median of its runs); a run that never reaches
    its threshold leaves its time-to-threshold ratio missing, and the row says so (a miss is not dropped
    silently). A case with a figure flagged after ``pairs`` pairs is measured with ``confirm_pairs`` more pairs
    (seeds ``pairs``, ``pairs + 1``, ...) and all its pairs count, as the scaling sweep does: with 2 or 3 pairs a
    one-env case's ratio moves by ±7% between invocations here."""
    rows = []
    for label, args, keys, runs in SPEED_CASES:
        sides = _speed_case(base, args, keys, runs, range(pairs))
        case_rows = _speed_rows(label, keys, runs, *sides, flag_below)
        if confirm_pairs and any(r["flagged"] for r in case_rows):
            print(f"  confirming {label}: {confirm_pairs} more pairs", flush=True)
            more = _speed_case(base, args, keys, runs, range(pairs, pairs + confirm_pairs))
            screening = case_rows
            case_rows = _speed_rows(label, keys, runs, sides[0] + more[0], sides[1] + more[1], flag_below)
            for row, screened in zip(case_rows, screening):
                row.update(screening_pairs=pairs, screening_ratio=screened["after_over_before"])
        rows += case_rows
    return rows


def _speed_case(base: dict, args: list[str], keys, runs: int, seeds) -> tuple[list[dict], list[dict]]:
    """``(before, after)``: one figure dict per seed on each side, each the median of ``runs`` alternating runs."""
    before, after = [], []
    for seed in seeds:
        seeded = [*args, "--seed", str(seed)]
        sides = ([], [])
        for _ in range(runs):
            sides[0].append(run_json(OURS_PY, *seeded, env=base["env"], tree=base["tree"],
                                     label=f"[before: {base['rev']}] "))
            sides[1].append(run_json(OURS_PY, *seeded, label="[after] "))
        before.append(_median_run(sides[0], keys))
        after.append(_median_run(sides[1], keys))
    return before, after


def _speed_rows(label: str, keys, runs: int, before: list[dict], after: list[dict], flag_below: float) -> list[dict]:
    rows = []
    for key, higher in keys:
        ratios = [(a[key] / b[key] if higher else b[key] / a[key]) if a.get(key) and b.get(key) else None
                  for a, b in zip(after, before)]
        ratio = stats(ratios)
        missed = sum(r is None for r in ratios)
        rows.append({"case": label, "figure": key, "higher_is_better": higher, "runs_per_side": runs,
                     "pairs": len(before), "before": stats([r.get(key) for r in before]),
                     "after": stats([r.get(key) for r in after]), "after_over_before": ratio, "missed_pairs": missed,
                     "flagged": missed > 0 or ratio["median"] is None or ratio["median"] < flag_below})
    return rows


def _median_run(runs: list[dict], keys) -> dict:
    """One side of a pair: each figure's median over its runs (missing if any run missed it: a run that never
    reached the threshold is not outvoted)."""
    values = {key: [r.get(key) for r in runs] for key, _ in keys}
    return {key: (None if None in v or 0 in v else stats(v)["median"]) for key, v in values.items()}


def report(results: dict) -> str:
    m = results["machine"]
    lines = [f"# rlpipe before/after, {m['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}.",
             f"Before: {results['baseline_rev']} ({results['baseline_commit'][:12]}); after: the working tree at "
             f"{results['after_commit'][:12]}{' plus uncommitted changes' if results['dirty'] else ''}. "
             f"{results['pairs']} pairs, alternating; cells are median (min–max); the ratio is after/before in "
             f"after's favour (> 1 faster); flagged below {results['flag_below']}.", "",
             "| case | figure | before | after | ratio | flagged |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["speed"]:
        miss = f" ({r['missed_pairs']} pair(s) missed the threshold)" if r["missed_pairs"] else ""
        runs = f" (each side the median of {r['runs_per_side']} runs)" if r.get("runs_per_side", 1) > 1 else ""
        if "screening_pairs" in r:
            runs += (f" ({r['pairs']} pairs: screening {fmt(r['screening_ratio']['median'])}× after "
                     f"{r['screening_pairs']} flagged it)")
        lines.append(f"| {r['case']}{runs} | {r['figure']} | {spread(r['before'])} | {spread(r['after'])} | "
                     f"{spread(r['after_over_before'])}×{miss} | {'yes' if r['flagged'] else 'no'} |")
    scaling = results.get("scaling", {}).get("before_after")
    if scaling:
        lines += ["", "Scaling sweep (SAC train node env steps/s; flagged points got "
                      f"{scaling['confirm_pairs']} more pairs):", "",
                  "| devices | num_envs | pairs | before | after | ratio | flagged |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in scaling["rows"]:
            lines.append(f"| {r['devices']} | {r['num_envs']} | {r['pairs']} | {spread(r['before'], 4)} | "
                         f"{spread(r['after'], 4)} | {spread(r['after_over_before'])}× | "
                         f"{'yes' if r['flagged'] else 'no'} |")
    figures = [r["after_over_before"]["median"] for r in results["speed"]]
    figures += [r["after_over_before"]["median"] for r in (scaling or {}).get("rows", [])]
    flagged = sum(r["flagged"] for r in results["speed"]) + sum(r["flagged"] for r in (scaling or {}).get("rows", []))
    lowest = min((f for f in figures if f is not None), default=None)
    lines += ["", f"Lowest median ratio: {fmt(lowest)}×; figures flagged: {flagged} of {len(figures)}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", required=True, help="the earlier revision (a git worktree of it is used)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--flag-below", type=float, default=0.95)
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling sweep")
    parser.add_argument("--iterations", type=int, default=SCALING_ITERATIONS, help="iterations per scaling run")
    parser.add_argument("--num-envs", help="comma-separated num_envs replacing the scaling sweep's")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    from run import git

    results = {"machine": machine(), "pairs": args.pairs, "flag_below": args.flag_below,
               "after_commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    with baseline_tree(args.baseline_rev) as base:
        results.update(baseline_rev=base["rev"], baseline_commit=base["commit"])
        results["speed"] = speed_pairs(base, args.pairs, args.flag_below)
    if not args.no_scaling:
        num_envs = [int(n) for n in args.num_envs.split(",")] if args.num_envs else None
        results["scaling"] = case_scaling(args.pairs, args.iterations, num_envs, args.baseline_rev,
                                         history_off=False)
    table = report(results)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H.%M.%SZ")
        (RESULTS / f"{stamp}-before-after.json").write_text(json.dumps(results, indent=2))
        (RESULTS / f"{stamp}-before-after.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
