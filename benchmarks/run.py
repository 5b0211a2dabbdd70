"""rlpipe against Stable-Baselines3 and rejax, side by side in one invocation (``make bench``).

Every figure printed is measured in this invocation: each case runs ours and a peer alternately (ours, theirs,
ours, theirs, ...) in fresh processes, and reports per-pair ratios with medians and spread. Results go to
``benchmarks/results/<timestamp>.json`` and ``.md`` (and ``latest.md``).

    .venv/bin/python benchmarks/run.py [--pairs 3] [--cases 1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"
QUIET = {"KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


def run_json(python: Path, script: str, *args: str, env: dict | None = None, timeout: int = 1800) -> dict:
    """Run a benchmark script in a fresh process; its last stdout line is its JSON result."""
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device unless a case asks for more
    environ.update({**QUIET, **(env or {})})
    started = time.perf_counter()
    proc = subprocess.run([str(python), str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    print(f"  {script} {' '.join(args)}: {summary_line(result)}", flush=True)
    return result


def summary_line(r: dict) -> str:
    keys = ("train_seconds_to_threshold", "process_seconds_to_threshold", "env_steps_to_threshold",
            "env_steps_per_s", "grad_steps_per_s", "train_step_compile_seconds")
    return ", ".join(f"{k}={r[k]:.4g}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}" for k in keys if k in r)


def stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def paired(ours: list[dict], theirs: list[dict], key: str, higher_is_better: bool) -> dict:
    """Median and spread of each side, and of the per-pair ratio (ours over theirs: >1 means ours is better)."""
    ratios = []
    for a, b in zip(ours, theirs):
        if a.get(key) and b.get(key):
            ratios.append(a[key] / b[key] if higher_is_better else b[key] / a[key])
    return {"ours": stats([r.get(key) for r in ours]), "theirs": stats([r.get(key) for r in theirs]),
            "advantage": stats(ratios)}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1), "python": platform.python_version(),
            "platform": platform.platform(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def ours_cold_and_warm(script: str, *args: str) -> tuple[dict, dict]:
    """Our run twice on a fresh persistent-cache folder: cold (everything compiles), then warm (the cache the
    project turns on by default for every `kedro run` is filled)."""
    cache = tempfile.mkdtemp(prefix="rlpipe-bench-cache-")
    try:
        cold = run_json(OURS_PY, script, *args, "--cache-dir", cache)
        warm = run_json(OURS_PY, script, *args, "--cache-dir", cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return cold, warm


# ------------------------------------------------------------------------------------------------------ cases
def case_sac_threshold(pairs: int) -> dict:
    """1. SAC Pendulum-v1: seconds until the deterministic eval mean (16 fixed episodes, every 1000 env steps)
    first reaches -200; each side with its best-known config."""
    common = ["--threshold", "-200", "--eval-every", "1000", "--eval-episodes", "16", "--max-env-steps", "20000"]
    return threshold_race(pairs, ["ours/sac.py", "--case", "threshold", *common],
                          {"sb3": ["peers/sb3_sac.py", "--case", "threshold", *common],
                           "rejax": ["peers/rejax_sac.py", *common]})


def threshold_race(pairs: int, ours_args: list[str], peers: dict[str, list[str]]) -> dict:
    """Ours (cold, then warm cache) against each peer, pair by pair (seed 0, 1, ...), on one threshold task."""
    out = {}
    for peer, peer_args in peers.items():
        ours, warm, theirs = [], [], []
        for seed in range(pairs):
            cold_run, warm_run = ours_cold_and_warm(*ours_args, "--seed", str(seed))
            ours.append(cold_run)
            warm.append(warm_run)
            theirs.append(run_json(PEERS_PY, *peer_args, "--seed", str(seed)))
        out[peer] = {"runs": {"ours": ours, "ours_warm_cache": warm, "theirs": theirs},
                     **{key: paired(ours, theirs, key, higher_is_better=key.endswith("_per_s"))
                        for key in ("train_seconds_to_threshold", "process_seconds_to_threshold",
                                    "env_steps_to_threshold", "env_steps_per_s")},
                     "process_seconds_to_threshold_warm_cache": paired(warm, theirs, "process_seconds_to_threshold",
                                                                       False),
                     "reached": {"ours": sum(bool(r["reached"]) for r in ours),
                                 "theirs": sum(bool(r["reached"]) for r in theirs), "of": pairs}}
    return out


def case_sac_throughput(pairs: int) -> dict:
    """2. SAC at identical hyperparameters (256x256, batch 256, one env, one gradient step per env step)."""
    ours, theirs = [], []
    for seed in range(pairs):
        ours.append(run_json(OURS_PY, "ours/sac.py", "--case", "throughput", "--seed", str(seed), "--steps", "3000"))
        theirs.append(run_json(PEERS_PY, "peers/sb3_sac.py", "--case", "throughput", "--seed", str(seed),
                               "--steps", "3000"))
    return {"sb3": {"runs": {"ours": ours, "theirs": theirs},
                    "grad_steps_per_s": paired(ours, theirs, "grad_steps_per_s", True)},
            "ours_roofline": {"flops_per_grad_step": ours[0]["flops_per_grad_step"],
                              "achieved_gflops": stats([r["achieved_gflops"] for r in ours]),
                              "matmul_gflops_peak": stats([r["matmul_gflops_peak"] for r in ours]),
                              "fraction_of_matmul_peak": stats([r["fraction_of_matmul_peak"] for r in ours])}}


def case_ppo(pairs: int) -> dict:
    """3. PPO CartPole-v1: seconds to a deterministic eval mean of 475 (16 fixed episodes) and env steps/s."""
    common = ["--threshold", "475", "--eval-episodes", "16", "--max-env-steps", "100000"]
    return threshold_race(pairs, ["ours/ppo.py", "--eval-every", "8192", *common],
                          {"sb3": ["peers/sb3_ppo.py", "--eval-every", "2048", *common],
                           "rejax": ["peers/rejax_ppo.py", "--eval-every", "2048", *common]})


def case_compile(pairs: int) -> dict:
    """4. Cold vs warm compile of the SAC train step; `kedro run --pipeline=sac` end to end, cold and warm cache."""
    cold, warm, run_cold, run_warm = [], [], [], []
    for _ in range(pairs):
        cache = Path(tempfile.mkdtemp(prefix="rlpipe-jax-cache-"))
        cold.append(run_json(OURS_PY, "ours/compile.py", "--cache-dir", str(cache)))
        warm.append(run_json(OURS_PY, "ours/compile.py", "--cache-dir", str(cache)))
        shutil.rmtree(cache)
        cache = Path(tempfile.mkdtemp(prefix="rlpipe-jax-cache-"))
        for bucket in (run_cold, run_warm):
            started = time.perf_counter()
            proc = subprocess.run([str(ROOT / ".venv" / "bin" / "kedro"), "run", "--pipeline=sac"], cwd=ROOT,
                                  env={**os.environ, **QUIET, "RLPIPE_JAX_CACHE_DIR": str(cache)},
                                  capture_output=True, text=True, timeout=1800)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            bucket.append(time.perf_counter() - started)
            print(f"  kedro run --pipeline=sac ({'cold' if bucket is run_cold else 'warm'} cache): "
                  f"{bucket[-1]:.1f} s", flush=True)
        shutil.rmtree(cache)
    return {"train_step_compile_cold_s": stats([r["train_step_compile_seconds"] for r in cold]),
            "train_step_compile_warm_s": stats([r["train_step_compile_seconds"] for r in warm]),
            "kedro_run_sac_cold_s": stats(run_cold), "kedro_run_sac_warm_s": stats(run_warm)}


def case_scaling(pairs: int) -> dict:
    """5. Env steps/s of the SAC train node against num_envs, on 1 and 2 (forced) devices; peak RSS."""
    rows = []
    for devices in (1, 2):
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        for n in (2, 8, 32, 128, 512, 1024, 4096) if devices == 2 else (1, 8, 32, 128, 512, 1024, 4096):
            rows.append(run_json(OURS_PY, "ours/scaling.py", "--num-envs", str(n), env=env))
    return {"rows": rows}


CASES = {"1": ("SAC Pendulum-v1 to -200", case_sac_threshold), "2": ("SAC identical hyperparameters", case_sac_throughput),
         "3": ("PPO CartPole-v1 to 475", case_ppo), "4": ("compilation", case_compile), "5": ("scaling", case_scaling)}


# ----------------------------------------------------------------------------------------------------- report
def fmt(x, digits=3):
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}g}"


def spread(s: dict, digits=3) -> str:
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})" if s["n"] else "n/a"


def report(results: dict) -> str:
    m = results["machine"]
    lines = [f"# rlpipe benchmarks, {m['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['platform']}.",
             f"Pairs per comparison: {results['pairs']}; cells are median (min–max); 'advantage' is the per-pair "
             "ratio in our favour (theirs/ours for times, ours/theirs for rates).", ""]
    targets = []
    if "1" in results["cases"]:
        c = results["cases"]["1"]
        lines += ["## 1. SAC Pendulum-v1: time until eval mean ≥ −200 (16 fixed episodes, every 1000 env steps)", "",
                  "| peer | ours train s | theirs train s | advantage | ours process s (cold / warm cache) | theirs process s | advantage (cold) | ours env steps | theirs env steps | reached (ours/theirs) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for peer, r in c.items():
            t, p, e = r["train_seconds_to_threshold"], r["process_seconds_to_threshold"], r["env_steps_to_threshold"]
            pw = r["process_seconds_to_threshold_warm_cache"]
            lines.append(f"| {peer} | {spread(t['ours'])} | {spread(t['theirs'])} | {spread(t['advantage'])}× | "
                         f"{spread(p['ours'])} / {spread(pw['ours'])} | {spread(p['theirs'])} | {spread(p['advantage'])}× | "
                         f"{spread(e['ours'])} | {spread(e['theirs'])} | {r['reached']['ours']}/{r['reached']['theirs']} of {r['reached']['of']} |")
        sb3, rej = c.get("sb3"), c.get("rejax")
        if sb3:
            adv = sb3["train_seconds_to_threshold"]["advantage"]["median"]
            targets.append(("1: training seconds to −200 ≤ 1/20 of SB3's", adv is not None and adv >= 20, f"{fmt(adv)}×"))
        if rej:
            adv = rej["train_seconds_to_threshold"]["advantage"]["median"]
            targets.append(("1: training seconds to −200 below rejax's", adv is not None and adv > 1, f"{fmt(adv)}×"))
        for peer, r in c.items():
            adv = r["process_seconds_to_threshold"]["advantage"]["median"]
            adv_warm = r["process_seconds_to_threshold_warm_cache"]["advantage"]["median"]
            targets.append((f"1: whole-process seconds to −200 (cold cache) below {peer}'s", adv is not None and adv > 1,
                            f"{fmt(adv)}× (warm cache: {fmt(adv_warm)}×)"))
        lines.append("")
    if "2" in results["cases"]:
        c = results["cases"]["2"]
        g, roof = c["sb3"]["grad_steps_per_s"], c["ours_roofline"]
        lines += ["## 2. SAC at identical hyperparameters (256×256, batch 256, 1 env, 1 gradient step per env step)", "",
                  "| | ours | SB3 | advantage |", "| --- | --- | --- | --- |",
                  f"| gradient steps/s | {spread(g['ours'])} | {spread(g['theirs'])} | {spread(g['advantage'])}× |", "",
                  f"FLOPs per gradient step (XLA cost analysis of the compiled update): {fmt(roof['flops_per_grad_step'] / 1e6)} M; "
                  f"achieved {spread(roof['achieved_gflops'])} GFLOP/s; this machine's measured matmul throughput for "
                  f"[256,256]@[256,256]: {spread(roof['matmul_gflops_peak'])} GFLOP/s; ours = "
                  f"{spread(roof['fraction_of_matmul_peak'])} of it.", ""]
        targets.append(("2: gradient steps/s ≥ 1.5× SB3's", (g["advantage"]["median"] or 0) >= 1.5, f"{fmt(g['advantage']['median'])}×"))
        frac = roof["fraction_of_matmul_peak"]["median"]
        targets.append(("2: ≥ 60% of the measured matmul throughput", (frac or 0) >= 0.6, f"{fmt(100 * frac)}%"))
    if "3" in results["cases"]:
        c = results["cases"]["3"]
        lines += ["## 3. PPO CartPole-v1: time until eval mean ≥ 475 (16 fixed episodes); env steps/s", "",
                  "| peer | ours process s (cold / warm cache) | theirs process s | advantage (cold / warm) | ours train s | theirs train s | ours env steps/s | theirs env steps/s | advantage | reached (ours/theirs) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for peer, r in c.items():
            p, t, s = r["process_seconds_to_threshold"], r["train_seconds_to_threshold"], r["env_steps_per_s"]
            pw = r["process_seconds_to_threshold_warm_cache"]
            lines.append(f"| {peer} | {spread(p['ours'])} / {spread(pw['ours'])} | {spread(p['theirs'])} | "
                         f"{spread(p['advantage'])}× / {spread(pw['advantage'])}× | "
                         f"{spread(t['ours'])} | {spread(t['theirs'])} | {spread(s['ours'])} | {spread(s['theirs'])} | "
                         f"{spread(s['advantage'])}× | {r['reached']['ours']}/{r['reached']['theirs']} of {r['reached']['of']} |")
            adv, adv_warm = p["advantage"]["median"], pw["advantage"]["median"]
            targets.append((f"3: seconds to 475 (compilation included, cold cache) below {peer}'s", (adv or 0) > 1,
                            f"{fmt(adv)}× (warm cache: {fmt(adv_warm)}×)"))
        if "sb3" in c:
            adv = c["sb3"]["env_steps_per_s"]["advantage"]["median"]
            targets.append(("3: env steps/s ≥ 50× SB3's", (adv or 0) >= 50, f"{fmt(adv)}×"))
        lines.append("")
    if "4" in results["cases"]:
        c = results["cases"]["4"]
        lines += ["## 4. Compilation (JAX persistent cache)", "", "| | cold cache | warm cache |", "| --- | --- | --- |",
                  f"| SAC train step compile, s | {spread(c['train_step_compile_cold_s'])} | {spread(c['train_step_compile_warm_s'])} |",
                  f"| `kedro run --pipeline=sac` end to end, s | {spread(c['kedro_run_sac_cold_s'])} | {spread(c['kedro_run_sac_warm_s'])} |", ""]
        targets += [("4: warm-cache train-step compile < 2 s", c["train_step_compile_warm_s"]["median"] < 2,
                     f"{fmt(c['train_step_compile_warm_s']['median'])} s"),
                    ("4: kedro run --pipeline=sac < 45 s cold", c["kedro_run_sac_cold_s"]["median"] < 45,
                     f"{fmt(c['kedro_run_sac_cold_s']['median'])} s"),
                    ("4: kedro run --pipeline=sac < 20 s warm", c["kedro_run_sac_warm_s"]["median"] < 20,
                     f"{fmt(c['kedro_run_sac_warm_s']['median'])} s")]
    if "5" in results["cases"]:
        rows = results["cases"]["5"]["rows"]
        lines += ["## 5. Scaling of the SAC train node (1 gradient step per iteration, batch 128)", "",
                  "| devices | num_envs | env steps/s | peak RSS MiB |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['devices']} | {r['num_envs']} | {fmt(r['env_steps_per_s'])} | {fmt(r['peak_rss_mb'])} |" for r in rows]
        lines += ["", f"Replay buffer: {rows[0]['buffer_bytes_per_transition']} bytes per transition (Pendulum: "
                      "float32 obs, action, reward, discount, next obs).", ""]
    lines += ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in targets]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cases", default="1,2,3,4,5")
    args = parser.parse_args()
    if not PEERS_PY.exists() and set(args.cases.split(",")) & {"1", "2", "3"}:
        sys.exit("the peers' venv is missing: run `make bench` (it creates .venv-peers), or only --cases 4,5")
    results = {"machine": machine(), "pairs": args.pairs, "cases": {}}
    for case in args.cases.split(","):
        title, fn = CASES[case]
        print(f"case {case}: {title}", flush=True)
        results["cases"][case] = fn(args.pairs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H.%M.%SZ")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    table = report(results)
    (RESULTS / f"{stamp}.md").write_text(table)
    if set(results["cases"]) == set(CASES) and args.pairs >= 3:  # only a full invocation becomes the quoted table
        (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
