"""Where the seconds of a first `kedro run --pipelines=<algo>` go, with a cold and a warm compilation cache.

    .venv/bin/python benchmarks/startup.py [--algo sac] [--repeats 2] [--peer] [--baseline-rev REV] [--no-save]
        [--params "sac.env.id=gymnasium:Pendulum-v1"]

Each repeat runs, in fresh processes on the project as it is (its conf/, data/ and mlflow.db):

- the floors: ``python -c "import jax"``, the same with ``jax.devices()`` (the backend up), and a ``kedro run`` of
  the pipeline's first node alone (Kedro's session, catalog and plugin hooks, with nothing to train);
- the whole job, cold (an empty JAX cache folder, ``RLPIPE_JAX_CACHE_DIR``) then warm (the folder the cold run
  filled), under ``python -X importtime``;
- the same job through the library alone (``ours/job_alone.py``), cold then warm: its compiled training seconds
  (the compute floor) and JAX's compile seconds by stage (tracing, lowering, XLA);
- with ``--peer``, Stable-Baselines3's same job (``PEER_JOBS``) as a whole process after our runs of each repeat;
- with ``--baseline-rev REV``, the same whole job (cold then warm, on a cache of its own) on that revision of the
  project, in a temporary git worktree with its own ``src/``, conf/, data/ and mlflow.db (created by one untimed
  run of its first node), before ours in each repeat: the before/after of the whole process and of the run;
- with ``--params``, every ``kedro run`` gets them as its ``--params`` (another job than the default one: then
  neither the job alone, nor Stable-Baselines3, nor the first-run targets, which are the default job's).

From each whole job: the process's wall seconds and peak memory (its own ``ru_maxrss``), the seconds until its first
console line, each node's "done in" seconds, the run's "finished in" seconds, the time left to exit, and the
imports' cumulative seconds by top-level package. Results: ``benchmarks/results/<timestamp>-startup.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run.py beside this file, also when loaded by path

from run import (FIRST_CONTACT_UNSET, KEDRO, OURS_PY, PEERS_PY, RESULTS, ROOT, baseline_tree, environment, fmt,
                 machine, spread, stats)

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
DONE_LINE = re.compile(r"(\S+) done in ([\d.]+) s")
FINISHED_LINE = re.compile(r"run \S+ finished in ([\d.]+) s")
TIMEOUT = 900
# Stable-Baselines3's same job as a whole process (benchmarks/peers, in .venv-peers): zoo hyperparameters, the
# default job's env steps, then the evaluation episodes once (a threshold it cannot reach: no early stop)
PEER_JOBS = {
    "sac": ["peers/sb3_sac.py", "--case", "threshold", "--threshold", "1e9", "--max-env-steps", "12000",
            "--eval-every", "12000", "--eval-episodes", "64"],
    "ppo": ["peers/sb3_ppo.py", "--threshold", "1e9", "--max-env-steps", "100000", "--eval-every", "100000",
            "--eval-episodes", "64"],
}
ALONE_ROWS = {"compiled training (the compute floor)": "train_seconds", "periodic evaluations": "eval_seconds",
              "config to the end of training": "job_seconds", "whole process": "process_seconds",
              "compiling: all stages": "compile_seconds", "compiling: tracing": "compile_tracing",
              "compiling: lowering to MLIR": "compile_lowering",
              "compiling: XLA (a cache load when warm)": "compile_xla"}
# The first-run targets: the whole process cold at least this many times faster than Stable-Baselines3's same job,
# and (sac) warm within this many seconds
TARGETS = {"sac": {"advantage": 10.0, "warm_seconds": 8.0}, "ppo": {"advantage": 3.0}}


def timed_process(command: list[str], env: dict, cwd: Path = ROOT) -> dict:
    """Run ``command`` to its end: wall seconds, peak RSS (MiB), exit status, and every output line with the
    seconds since the start at which it arrived (stdout and stderr merged, in order)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []

    def read():
        for line in proc.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timer = threading.Timer(TIMEOUT, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    reader.join(timeout=30)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit status {code}):\n"
                           + "\n".join(line for _, line in lines[-40:]))
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "lines": lines}


def imports_by_package(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Cumulative import seconds of each top-level package imported at the outermost level."""
    totals: dict[str, float] = defaultdict(float)
    for _, line in lines:
        found = IMPORT_LINE.match(line)
        if found and len(found.group(3)) == 1:  # one space: imported by the program itself, not by a package
            totals[found.group(4).split(".")[0]] += int(found.group(2)) / 1e6
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def job_breakdown(run: dict) -> dict:
    console = [(t, line) for t, line in run["lines"] if not line.startswith("import time:")]
    nodes = {m.group(1): float(m.group(2)) for _, line in console if (m := DONE_LINE.search(line))}
    finished = [(t, float(m.group(1))) for t, line in console if (m := FINISHED_LINE.search(line))]
    imports = imports_by_package(run["lines"])
    return {"seconds": run["seconds"], "peak_mib": run["peak_mib"],
            "first_line_seconds": console[0][0] if console else None,
            "finished_in_seconds": finished[0][1] if finished else None,
            "after_finished_seconds": run["seconds"] - finished[0][0] if finished else None,
            "nodes": nodes, "imports_seconds": sum(imports.values()), "imports": dict(list(imports.items())[:12]),
            "console": [line for _, line in console][-60:]}


def kedro_run(algo: str, params: str | None, *extra: str) -> list[str]:
    """``kedro run --pipelines=<algo>`` with ``params`` as its ``--params`` (if any) and ``extra``."""
    return [str(KEDRO), "run", f"--pipelines={algo}", *(["--params", params] if params else []), *extra]


def floors(algo: str, first_node: str | None, env: dict, params: str | None = None) -> dict:
    python = str(OURS_PY)
    result = {"import_jax": timed_process([python, "-c", "import jax"], env)["seconds"],
              "jax_devices": timed_process([python, "-c", "import jax; jax.devices()"], env)["seconds"]}
    if first_node:
        one = timed_process(kedro_run(algo, params, f"--nodes={first_node}"), env)
        result["one_node_run"] = one["seconds"]
    return result


def job_alone(algo: str, env: dict) -> dict:
    """The job through the library alone (``ours/job_alone.py``), cold then warm on a cache of its own: its
    compiled training seconds (the compute floor) and JAX's compile seconds by stage."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="rlpipe-startup-alone-") as cache:
        for kind in ("cold", "warm"):
            run = timed_process([str(OURS_PY), str(ROOT / "benchmarks" / "ours" / "job_alone.py"), "--algo", algo,
                                 "--cache-dir", cache], env)
            result = json.loads(run["lines"][-1][1])
            compile_ = result["compile"]
            out[kind] = {"train_seconds": result["train_seconds"], "eval_seconds": result["eval_seconds"],
                         "job_seconds": result["job_seconds"], "process_seconds": run["seconds"],
                         "compile_seconds": compile_["tracing"] + compile_["lowering"] + compile_["xla"],
                         **{f"compile_{k}": compile_[k] for k in ("tracing", "lowering", "xla")},
                         "largest_compiles": compile_["largest"]}
    return out


def cold_then_warm(algo: str, env: dict, label: str, cwd: Path = ROOT, params: str | None = None) -> dict:
    """The whole job cold (an empty cache folder) then warm (the folder the cold run filled): its breakdowns."""
    command = [str(OURS_PY), "-X", "importtime", *kedro_run(algo, params)]
    out = {}
    with tempfile.TemporaryDirectory(prefix="rlpipe-startup-cache-") as cache:
        for kind in ("cold", "warm"):
            r = out[kind] = job_breakdown(timed_process(command, {**env, "RLPIPE_JAX_CACHE_DIR": cache}, cwd))
            print(f"  {label} {kind}: {r['seconds']:.2f} s, first line at {fmt(r['first_line_seconds'])} s, "
                  f"finished in {fmt(r['finished_in_seconds'])} s, {r['peak_mib']:.0f} MiB", flush=True)
    return out


def measure(algo: str, repeats: int, peer: bool = False, base: dict | None = None,
            params: str | None = None) -> dict:
    env = {k: v for k, v in environment().items() if k not in FIRST_CONTACT_UNSET}
    runs = {"cold": [], "warm": [], "floors": []}
    if base:  # the baseline's own mlflow.db and experiment, created before anything is timed
        timed_process(kedro_run(algo, params, f"--nodes={algo}.load_config"), {**env, **base["env"]}, base["tree"])
    for repeat in range(repeats):
        if base:
            label = f"[{repeat + 1}/{repeats}] [before: {base['rev']}]"
            before = cold_then_warm(algo, {**env, **base["env"]}, label, base["tree"], params)
            for kind in ("cold", "warm"):
                runs.setdefault(f"before_{kind}", []).append(before[kind])
        for kind, r in cold_then_warm(algo, env, f"[{repeat + 1}/{repeats}]", params=params).items():
            runs[kind].append(r)
        if peer:
            sb3 = timed_process([str(PEERS_PY), str(ROOT / "benchmarks" / PEER_JOBS[algo][0]), *PEER_JOBS[algo][1:],
                                 "--seed", str(repeat)], env)
            runs.setdefault("peer", []).append({"seconds": sb3["seconds"], "peak_mib": sb3["peak_mib"]})
            print(f"  [{repeat + 1}/{repeats}] Stable-Baselines3's same job: {sb3['seconds']:.2f} s, "
                  f"{sb3['peak_mib']:.0f} MiB", flush=True)
        first_node = next(iter(runs["warm"][-1]["nodes"]), None)
        runs["floors"].append(floors(algo, first_node, env, params))
        if not params:  # the library alone runs the default job
            runs.setdefault("alone", []).append(job_alone(algo, env))
            a = runs["alone"][-1]
            print(f"  [{repeat + 1}/{repeats}] the job alone: compiled training {a['warm']['train_seconds']:.2f} s; "
                  f"compiling {a['cold']['compile_seconds']:.2f} s cold, {a['warm']['compile_seconds']:.2f} s warm",
                  flush=True)
        print(f"  [{repeat + 1}/{repeats}] floors: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                                                 runs["floors"][-1].items()), flush=True)
    return runs


def summarize(runs: dict) -> dict:
    summary = {"floors": {k: stats([f[k] for f in runs["floors"] if k in f]) for k in runs["floors"][0]}}
    if runs.get("peer"):
        summary["peer"] = {k: stats([r[k] for r in runs["peer"]]) for k in ("seconds", "peak_mib")}
        summary["peer"]["advantage"] = {kind: stats([p["seconds"] / r["seconds"] for p, r in
                                                     zip(runs["peer"], runs[kind])]) for kind in ("cold", "warm")}
    if runs.get("before_cold"):
        summary["before_after"] = {
            kind: {key: {"before": stats([r[key] for r in runs[f"before_{kind}"]]),
                         "after": stats([r[key] for r in runs[kind]]),
                         "ratio": stats([b[key] / a[key] for b, a in zip(runs[f"before_{kind}"], runs[kind])])}
                   for key in ("seconds", "finished_in_seconds", "peak_mib")}
            for kind in ("cold", "warm")}
    summary["floor_sums"] = floor_sums(runs)
    for kind in ("cold", "warm"):
        rs = runs[kind]
        summary[kind] = {k: stats([r[k] for r in rs]) for k in
                         ("seconds", "first_line_seconds", "finished_in_seconds", "after_finished_seconds",
                          "imports_seconds", "peak_mib")}
        summary[kind]["nodes"] = {n: stats([r["nodes"].get(n) for r in rs]) for n in rs[0]["nodes"]}
        summary[kind]["imports"] = {p: stats([r["imports"].get(p) for r in rs]) for p in rs[0]["imports"]}
        alone = [a[kind] for a in runs.get("alone", [])]
        if alone:
            summary[kind]["alone"] = {k: stats([a[k] for a in alone]) for k in ALONE_ROWS.values()}
    return summary


def floor_sums(runs: dict) -> dict:
    """Per repeat, what a whole run cannot go below: a Kedro session of this project with nothing to train (the
    one-node run: Python, imports, plugins, MLflow's store) plus the job alone's compiled training, and, cold, its
    compiling too (every program of the job from an empty cache)."""
    cold, warm = [], []
    for f, a in zip(runs["floors"], runs.get("alone", [])):
        if f.get("one_node_run") is not None:
            warm.append(f["one_node_run"] + a["warm"]["train_seconds"])
            cold.append(f["one_node_run"] + a["cold"]["compile_seconds"] + a["cold"]["train_seconds"])
    return {"cold": stats(cold), "warm": stats(warm)}


def targets_table(algo: str, summary: dict) -> list[str]:
    """Each first-run target of ``algo``: met or not, and whether the floor under it already exceeds it."""
    target = TARGETS.get(algo)
    if not target:
        return []
    floor = summary["floor_sums"]
    lines = ["", "Targets (medians; the floor: the one-node run plus the job alone's compiled training, and cold "
             "also its compiling from an empty cache):", "",
             "| target | met | measured | allowed | the floor under it |", "| --- | --- | --- | --- | --- |"]
    if "advantage" in target:
        goal = f"whole process, cold cache, ≥ {target['advantage']:g}× Stable-Baselines3's same job"
        if "peer" not in summary:
            lines.append(f"| {goal} | NO (Stable-Baselines3 not run: --peer) | | | |")
        else:
            allowed = summary["peer"]["seconds"]["median"] / target["advantage"]
            advantage = summary["peer"]["advantage"]["cold"]["median"]
            lines.append(f"| {goal} | {'yes' if advantage >= target['advantage'] else 'NO'} | "
                         f"{advantage:.2f}× ({summary['cold']['seconds']['median']:.1f} s) | ≤ {allowed:.1f} s | "
                         f"{_against(floor['cold'], allowed)} |")
    if "warm_seconds" in target:
        allowed, seconds = target["warm_seconds"], summary["warm"]["seconds"]["median"]
        lines.append(f"| whole process, warm cache, ≤ {allowed:g} s | {'yes' if seconds <= allowed else 'NO'} | "
                     f"{seconds:.1f} s | ≤ {allowed:g} s | {_against(floor['warm'], allowed)} |")
    return lines


def _against(floor: dict, allowed: float) -> str:
    if not floor["n"]:
        return "n/a"
    over = floor["median"] - allowed
    return f"{floor['median']:.1f} s: " + (f"{over:.1f} s over what the target allows" if over > 0
                                             else f"{-over:.1f} s under it")


def report(algo: str, summary: dict, meta: dict) -> str:
    m = meta["machine"]
    params = f" --params {meta['params']}" if meta.get("params") else ""
    lines = [f"# `kedro run --pipelines={algo}{params}`: where the time goes, {meta['date']}", "",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB. {meta['repeats']} repeats; "
             "cells are median (min–max) seconds; whole processes under `python -X importtime` (which adds a "
             "little to the imports).", "", "| | cold cache | warm cache |", "| --- | --- | --- |"]
    rows = (("whole process", "seconds"), ("first console line", "first_line_seconds"),
            ("run (Kedro's 'finished in')", "finished_in_seconds"), ("after the run, to exit", "after_finished_seconds"),
            ("imports at the outermost level", "imports_seconds"), ("peak memory, MiB", "peak_mib"))
    lines += [f"| {label} | {spread(summary['cold'][key])} | {spread(summary['warm'][key])} |" for label, key in rows]
    if "peer" in summary:
        p = summary["peer"]
        lines += [f"| Stable-Baselines3's same job, whole process (`{' '.join(PEER_JOBS[algo])}`) | "
                  f"{spread(p['seconds'])} | |",
                  f"| advantage (its seconds over ours, per pair) | {spread(p['advantage']['cold'])}× | "
                  f"{spread(p['advantage']['warm'])}× |",
                  f"| Stable-Baselines3's peak memory, MiB | {spread(p['peak_mib'])} | |"]
    lines += [f"| node `{n}` | {spread(s)} | {spread(summary['warm']['nodes'].get(n, {'n': 0}))} |"
              for n, s in summary["cold"]["nodes"].items()]
    if not meta.get("params"):  # the targets are the default job's
        lines += targets_table(algo, summary)
    if "before_after" in summary:
        lines += before_after_table(summary["before_after"], meta["baseline"])
    if "alone" in summary["cold"]:
        lines += ["", f"The same job through the library alone (no Kedro, no MLflow; `benchmarks/ours/job_alone.py`, "
                  "on a cache of its own), JAX's compile timings summed over its programs:", "",
                  "| | cold cache | warm cache |", "| --- | --- | --- |"]
        lines += [f"| {label} | {spread(summary['cold']['alone'][key])} | {spread(summary['warm']['alone'][key])} |"
                  for label, key in ALONE_ROWS.items()]
    lines += ["", "Imports (cumulative seconds, warm runs), the largest: " + ", ".join(
        f"{p} {spread(s)}" for p, s in summary["warm"]["imports"].items()), "",
        "Floors: " + ", ".join(f"{k.replace('_', ' ')} {spread(s)} s" for k, s in summary["floors"].items()), ""]
    return "\n".join(lines)


def before_after_table(ba: dict, baseline: dict) -> list[str]:
    lines = ["", f"Before/after in the same invocation: the same job at `{baseline['rev']}` "
             f"({baseline['commit'][:12]}, its own worktree, data and mlflow.db) run just before ours in each "
             "repeat; the ratio is before/after per pair (> 1: faster now; for memory, > 1: less now).", "",
             "| | before | after | ratio |", "| --- | --- | --- | --- |"]
    labels = {"seconds": "whole process", "finished_in_seconds": "run (Kedro's 'finished in')",
              "peak_mib": "peak memory, MiB"}
    for kind in ("cold", "warm"):
        lines += [f"| {label}, {kind} cache | {spread(ba[kind][key]['before'])} | {spread(ba[kind][key]['after'])} | "
                  f"{spread(ba[kind][key]['ratio'])}× |" for key, label in labels.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="sac", help="the pipeline to run (default sac)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="print the table only; write no result files")
    parser.add_argument("--peer", action="store_true",
                        help="also Stable-Baselines3's same job after each repeat's runs (needs .venv-peers: "
                             "make .venv-peers/.installed)")
    parser.add_argument("--baseline-rev", help="also the same job on this earlier revision, before ours in each repeat")
    parser.add_argument("--params", help="the --params of every kedro run (another job than the default one)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.peer and args.algo not in PEER_JOBS:
        parser.error(f"--peer: no Stable-Baselines3 job for {args.algo} (one of {', '.join(PEER_JOBS)})")
    if args.peer and args.params:
        parser.error("--peer: Stable-Baselines3's job is the default one; leave out --params")
    if args.peer and not PEERS_PY.exists():
        parser.error(f"--peer needs {PEERS_PY} (make .venv-peers/.installed)")
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
            "repeats": args.repeats, "algo": args.algo, "params": args.params}
    if args.baseline_rev:
        with baseline_tree(args.baseline_rev) as base:
            meta["baseline"] = {"rev": base["rev"], "commit": base["commit"]}
            runs = measure(args.algo, args.repeats, args.peer, base, args.params)
    else:
        runs = measure(args.algo, args.repeats, args.peer, params=args.params)
    summary = summarize(runs)
    table = report(args.algo, summary, meta)
    if not args.no_save:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H.%M.%SZ")
        (RESULTS / f"{stamp}-startup.json").write_text(json.dumps({**meta, "summary": summary, "runs": runs},
                                                                  indent=1))
        (RESULTS / f"{stamp}-startup.md").write_text(table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
