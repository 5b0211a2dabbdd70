"""rlpipe against Stable-Baselines3 and rejax, side by side in one invocation (``make bench``).

Every figure printed is measured in this invocation: each case runs ours and a peer alternately (ours, theirs,
ours, theirs, ...) in fresh processes, and reports per-pair ratios with medians and spread. Results go to
``benchmarks/results/<timestamp>.json`` and ``.md`` (and ``latest.md``), or to ``--out``.

    .venv/bin/python benchmarks/run.py [--pairs 3] [--cases 1,2,3,4,5,6,7,8,9,10,11]

Case 5 also runs the scaling sweep on the code of ``--baseline-rev`` (default 444244e, the last commit on
pmap; checked out in a temporary git worktree, removed at the end), alternating before/after pair by pair.
Case 6 compares 1 process with 2 devices against 2 processes (``python -m rlpipe.launch``) with 1 device each
(unpinned, then each process pinned to its own CPU), and runs them on the code of ``--multiprocess-baseline-rev``
too (default fdb5eb8, the last commit whose collectives all-reduced a tree leaf by leaf), before/after pair by pair.
For a quick look at cases 5 and 6: ``--pairs 1 --cases 5,6 --num-envs 64 --iterations 6 --no-save``.
Case 7 (first contact) times whole ``kedro run`` processes with a warm cache (``--pipeline=sac``, ``--pipeline=ppo``,
a config error) and counts their output lines, on the working tree and on ``--first-contact-baseline-rev`` (default
f24d691, in a temporary git worktree like case 5's), alternately pair by pair; each tree writes its own data/ and
mlflow.db (the working tree's are the project's: these are ordinary versioned runs).
Case 8 trains SAC on HalfCheetah-v5 against Stable-Baselines3 (``--halfcheetah-seeds`` seeds per side, ~15 minutes a
seed pair). Case 9 compares N seeds in one program with N one-seed runs (SAC, PPO) and runs a real search (the
shipped ``sac_tune`` config) whose best config then meets the default one with fresh seeds. Case 10 trains the
shipped partially observable PPO configs with their LSTM and with a feed-forward MLP instead (seeds 0..pairs-1).
Case 11 times the default configs with the training history recorded inside the compiled chunk and without.
Case 12 trains the randomized-Pendulum SAC config with its curriculum and with uniform scenario sampling (4 seeds in
one program each, at the config's budget and at 100k env steps), and runs the imitation chain (SAC expert,
recorded demonstrations, PPO imitating them with task_weight 0; 3 imitator seeds) as `kedro run` commands.
Case 13 trains the shipped multi-agent SAC config on MPE_simple_spread_v3 with attention critics and with independent
critics (3 seeds in one program each) and runs JaxMARL's own IPPO baseline script (read from a clone of the JaxMARL
repository, ``--jaxmarl-repo``; the script is not on the package index) at the same env-step budget, 3 seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"
QUIET = {"KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
# the JAX coordinates of a multi-process run: never inherited by a benchmark process unless a case sets them
DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
SCALING_ITERATIONS = 3000  # case 5: 3 logged chunks of 1,000. At 60 iterations (chunks of 20, ~7 ms at 512 envs)
# timer and dispatch noise swung the before/after ratio by +-20% on this machine; at 600 the runs of 1 to 128 envs
# still lasted 0.2 s (a chunk 0.05 s) and single pairs swung by 20%
MULTIPROCESS_ITERATIONS = 600  # case 6: its two sides differ 7-fold; its 2-process runs are the slow ones
TIMEOUT = 1800  # seconds any one benchmark process (or group of processes) may take; --timeout
BASELINE_REV = "444244e"  # the last commit on pmap, before the move to jit(shard_map) on a device mesh
# case 7's "before": the last commit before the first-contact work (quiet console, config errors as messages before
# the heavy imports, the fast exit of a finished run)
BASELINE_FIRST_CONTACT_REV = "f24d691"


def environment(env: dict | None = None) -> dict:
    environ = {k: v for k, v in os.environ.items()  # one device unless a case asks for more
               if k != "XLA_FLAGS" and k not in DISTRIBUTED_ENV}
    return {**environ, **QUIET, **(env or {})}


def run_captured(command: list[str], env: dict, cwd: Path = ROOT, timeout: float | None = None) -> tuple[int, str, str]:
    """Run ``command`` in its own process group and wait at most ``timeout`` seconds (default ``TIMEOUT``); on a
    timeout, an interrupt or any other error, the whole group (the command and whatever it started) is killed."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout or TIMEOUT)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    return proc.returncode, out, err


def run_json(python: Path, script: str, *args: str, env: dict | None = None, timeout: int | None = None,
             tree: Path = ROOT, label: str = "", cpus: str | None = None) -> dict:
    """Run a benchmark script (of the benchmarks/ folder of ``tree``) in a fresh process (with ``cpus``, on those
    CPUs only: ``taskset -c``); its last stdout line is its JSON result."""
    started = time.perf_counter()
    pin = ["taskset", "-c", cpus] if cpus else []
    code, out, err = run_captured([*pin, str(python), str(tree / "benchmarks" / script), *args], environment(env),
                                  cwd=tree, timeout=timeout)
    if code != 0:
        raise RuntimeError(f"{label}{script} {' '.join(args)} failed (exit status {code}):\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    print(f"  {label}{script} {' '.join(args)}: {summary_line(result)}", flush=True)
    return result


def run_json_processes(processes: int, devices_per_process: int, script: str, *args: str,
                       timeout: int | None = None, pin_cpus: bool = False, tree: Path = ROOT,
                       env: dict | None = None) -> dict:
    """Run a benchmark script as ``processes`` processes of one JAX run (``python -m rlpipe.launch``, which puts
    every process on a free local port and prefixes their output lines with ``[p<i>] ``); process 0's JSON line is
    the result. The launcher and its processes share one process group: a timeout kills them all."""
    started = time.perf_counter()
    command = [str(OURS_PY), "-m", "rlpipe.launch", "--processes", str(processes), "--devices-per-process",
               str(devices_per_process), "--grace", "30", *(["--pin-cpus"] if pin_cpus else []), "--",
               str(OURS_PY), str(tree / "benchmarks" / script), *args]
    code, out, err = run_captured(command, environment(env), cwd=tree, timeout=timeout)
    what = f"{script} {' '.join(args)} ({processes} processes x {devices_per_process} device)"
    if code != 0:
        raise RuntimeError(f"{what} failed (exit status {code}):\n{(out + err)[-4000:]}")
    result = None
    for line in out.splitlines():
        if line.startswith("[p0] {"):
            try:
                result = json.loads(line[len("[p0] "):])
            except json.JSONDecodeError:
                continue
    if not isinstance(result, dict):
        raise RuntimeError(f"{what}: process 0 printed no JSON line:\n{out[-4000:]}")
    if result.get("processes") != processes:
        raise RuntimeError(f"{what}: process 0 ran in a run of {result.get('processes')} process(es), not "
                           f"{processes}: it did not join the others")
    result["wall_seconds"] = time.perf_counter() - started
    if threads := re.search(r"^rlpipe\.launch: process 0 of .*, XLA threads (\d+)\)$", out, re.MULTILINE):
        result["xla_threads"] = int(threads.group(1))  # the pool size the launcher gave (not said before it did)
    print(f"  {what}: {summary_line(result)}", flush=True)
    return result


def summary_line(r: dict) -> str:
    keys = ("train_seconds_to_threshold", "process_seconds_to_threshold", "env_steps_to_threshold",
            "env_steps_per_s", "grad_steps_per_s", "train_step_compile_seconds", "agent_env_steps_per_s", "seconds",
            "search_seconds")
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


# rlpipe sets this XLA flag at import since 21c1efe (src/rlpipe/__init__.py: XLA copied SAC's replay buffer twice per
# iteration without it). It is independent of pmap or shard_map, so case 5's baseline gets it too: the comparison
# is of the move off pmap, not of the flag.
COPY_FLAG = "--xla_cpu_copy_insertion_use_region_analysis=true"


def with_copy_flag(env: dict) -> dict:
    return {**env, "XLA_FLAGS": f"{env.get('XLA_FLAGS', '')} {COPY_FLAG}".strip()}


def forced_devices(devices: int) -> dict:
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def check_devices(runs: list[dict], devices: int) -> None:
    """A run that trained on another device count than its case asked for measured something else."""
    if wrong := [r for r in runs if r.get("devices") != devices]:
        raise RuntimeError(f"{len(wrong)} run(s) trained on {wrong[0].get('devices')} device(s), not {devices}")


def git(*args: str, timeout: int = 300) -> str:
    code, out, err = run_captured(["git", *args], dict(os.environ), timeout=timeout)
    if code != 0:
        raise RuntimeError(f"git {' '.join(args)} failed (exit status {code}): {err.strip()[-2000:]}")
    return out.strip()


@contextmanager
def baseline_tree(rev: str):
    """The project at ``rev`` in a temporary git worktree (detached; removed on the way out, also on failure), with
    the command prefix and environment that run its benchmark scripts against its own ``src/`` (the venv's
    editable install points at this working tree's ``src/``: checked, not assumed)."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="rlpipe-bench-baseline-"))
    tree = parent / "tree"
    added = False
    try:
        git("worktree", "add", "--detach", str(tree), commit)
        added = True
        env = {"PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree / "benchmarks" / "ours")])}
        code, out, err = run_captured([str(OURS_PY), "-c", "import rlpipe; print(rlpipe.__file__)"], environment(env),
                                      cwd=tree, timeout=120)
        imported = Path(out.strip().splitlines()[-1]).resolve() if code == 0 and out.strip() else None
        if imported is None or not imported.is_relative_to((tree / "src").resolve()):
            raise RuntimeError(f"under PYTHONPATH={env['PYTHONPATH']} rlpipe is imported from {imported} "
                               f"(exit status {code}: {err.strip()[-1000:]}), not from the worktree of {rev}")
        print(f"  baseline {rev} ({commit[:12]}) checked out in {tree}; rlpipe imported from {imported}", flush=True)
        yield {"rev": rev, "commit": commit, "tree": tree, "env": env}
    finally:
        if added:
            try:
                git("worktree", "remove", "--force", str(tree), timeout=120)
            except Exception as exc:  # noqa: BLE001 - still clean up what can be cleaned up
                print(f"  warning: git worktree remove failed: {exc}", file=sys.stderr, flush=True)
        shutil.rmtree(parent, ignore_errors=True)
        try:
            git("worktree", "prune", timeout=120)
        except Exception as exc:  # noqa: BLE001
            print(f"  warning: git worktree prune failed: {exc}", file=sys.stderr, flush=True)


SCALING_SWEEP = {1: (1, 8, 32, 128, 512, 1024, 4096), 2: (2, 8, 32, 128, 512, 1024, 4096)}


SCALING_CONFIRM_PAIRS = 6


def case_scaling(pairs: int, iterations: int = SCALING_ITERATIONS, num_envs: list[int] | None = None,
                 baseline_rev: str | None = BASELINE_REV, confirm_pairs: int = SCALING_CONFIRM_PAIRS,
                 history_off: bool = True) -> dict:
    """5. Env steps/s of the SAC train node against num_envs, on 1 and 2 (forced) devices; peak RSS. With
    ``baseline_rev``, every point is also run on that revision's code, alternately (before, after, before, ...),
    and the working tree once more with its in-chunk history off (the baseline's work). A point whose median ratio
    falls below 0.95 after ``pairs`` pairs is measured with ``confirm_pairs`` more pairs (the ratios of all its
    pairs then count): with 3 pairs the per-pair ratios spread over ±10% here, and the screening flags a different
    few of the 14 points each sweep. ``history_off=False`` skips the history-off runs (for a baseline that already
    records its history in the chunk)."""
    scaling_args = ["--iterations", str(iterations)]
    with baseline_tree(baseline_rev) if baseline_rev else _no_baseline() as base:
        rows, comparison, runs = [], [], {"after": [], "before": [], "after_history_off": []}

        def measure(devices: int, n: int, count: int) -> tuple[list, list, list]:
            env = forced_devices(devices)
            args = ["--num-envs", str(n), *scaling_args]
            after, before, same_work = [], [], []
            for _ in range(count):
                if base:
                    before.append(run_json(OURS_PY, "ours/scaling.py", *args,
                                           env=with_copy_flag({**env, **base["env"]}),
                                           tree=base["tree"], label=f"[before: {base['rev']}] "))
                after.append(run_json(OURS_PY, "ours/scaling.py", *args, env=env,
                                      label="[after] " if base else ""))
                if base and history_off:  # a baseline before the in-chunk history: the same work without it
                    same_work.append(run_json(OURS_PY, "ours/scaling.py", *args, "--history-points", "0",
                                              env=env, label="[after, history off] "))
            check_devices(after + before + same_work, devices)
            runs["after"] += after
            runs["before"] += before
            runs["after_history_off"] += same_work
            return after, before, same_work

        def compare(devices: int, n: int, after: list, before: list, same_work: list, screened: int) -> dict:
            ratio = stats([a["env_steps_per_s"] / b["env_steps_per_s"] for a, b in zip(after, before)])
            same = stats([a["env_steps_per_s"] / b["env_steps_per_s"] for a, b in zip(same_work, before)]) \
                if same_work else stats([])
            return {"devices": devices, "num_envs": n, "pairs": len(before), "screening_pairs": screened,
                    "before": stats([r["env_steps_per_s"] for r in before]),
                    "after": stats([r["env_steps_per_s"] for r in after]),
                    "after_over_before": ratio, "flagged": ratio["median"] is not None and ratio["median"] < 0.95,
                    "after_history_off": stats([r["env_steps_per_s"] for r in same_work]),
                    "history_off_over_before": same,
                    "history_off_flagged": same["median"] is not None and same["median"] < 0.95}

        measured = {}
        for devices in (1, 2):
            sweep = [n for n in num_envs if n % devices == 0] if num_envs else SCALING_SWEEP[devices]
            for n in sweep:
                after, before, same_work = measured[devices, n] = measure(devices, n, pairs)
                rows.append({"devices": devices, "num_envs": n,
                             "env_steps_per_s": stats([r["env_steps_per_s"] for r in after])["median"],
                             "peak_rss_mb": stats([r["peak_rss_mb"] for r in after])["median"],
                             "buffer_bytes_per_transition": after[0]["buffer_bytes_per_transition"]})
                if base:
                    comparison.append(compare(devices, n, after, before, same_work, pairs))
        screening = [dict(row) for row in comparison]
        for i, row in enumerate(comparison):
            if confirm_pairs and (row["flagged"] or row["history_off_flagged"]):
                key = (row["devices"], row["num_envs"])
                print(f"  confirming {key[0]} device(s) x {key[1]} envs: {confirm_pairs} more pairs", flush=True)
                more = measure(*key, confirm_pairs)
                lists = [old + new for old, new in zip(measured[key], more)]
                comparison[i] = compare(*key, *lists, pairs)
    out = {"rows": rows, "runs": runs, "iterations": iterations}
    if base:
        out["before_after"] = {"baseline_rev": base["rev"], "baseline_commit": base["commit"], "after": "working tree",
                               "flag_below": 0.95, "rows": comparison, "screening_rows": screening,
                               "confirm_pairs": confirm_pairs}
    return out


@contextmanager
def _no_baseline():
    yield None


MULTIPROCESS_NUM_ENVS = (8, 1024, 4096)
MULTIPROCESS_SEEDS = 2  # case 6's seeds-over-processes figure: one seed per process against one per device
MULTIPROCESS_BASELINE_REV = "fdb5eb8"  # the last commit whose collectives all-reduced a tree leaf by leaf


def case_multiprocess(pairs: int, iterations: int = MULTIPROCESS_ITERATIONS, num_envs: list[int] | None = None,
                      baseline_rev: str | None = MULTIPROCESS_BASELINE_REV) -> dict:
    """6. The cost of crossing processes: env steps/s of the SAC train node (scaling.py's measurement) on 2
    devices, either 1 process x 2 (forced) devices or 2 processes x 1 device (a jax.distributed run on this
    machine, collectives over gloo; unpinned, then each process pinned to its own CPU), alternately pair by pair.
    Beside each pair: the compute alone (1 process x 1 device on half the envs, each device's work without
    collectives; on both CPUs, and on one CPU for the pinned layout), the all-reduces of the 2-process chunk, and,
    once, the floor (a raw all-reduce of those bytes between the 2 processes); then the same 2 seeds one per device,
    on 1 process x 2 devices against 2 processes x 1 device (no collective crosses seeds). With ``baseline_rev``,
    both layouts also run on that revision's code in each pair (before, then after)."""
    with baseline_tree(baseline_rev) if baseline_rev else nullcontext() as base:
        out = _multiprocess_rows(pairs, iterations, num_envs, base)
    # the seeds figure at 8 envs is cheap: always at the default length, whatever --iterations shortens above
    return {**out, "iterations": iterations, "baseline_rev": baseline_rev,
            "seeds": seeds_over_processes(pairs, MULTIPROCESS_ITERATIONS)}


def _before(args: list[str], base: dict) -> tuple[dict, dict, dict]:
    """The baseline's 1 process x 2 devices and 2 processes x 1 device (unpinned, then pinned) runs of ``args``."""
    one = run_json(OURS_PY, "ours/scaling.py", *args, env={**base["env"], **forced_devices(2)}, tree=base["tree"],
                   label="[before, 1 process x 2] ")
    return (one, run_json_processes(2, 1, "ours/scaling.py", *args, tree=base["tree"], env=base["env"]),
            run_json_processes(2, 1, "ours/scaling.py", *args, tree=base["tree"], env=base["env"], pin_cpus=True))


def _multiprocess_rows(pairs: int, iterations: int, num_envs: list[int] | None, base: dict | None) -> dict:
    """Case 6's rows: per num_envs, 1 process x 2 devices against 2 processes x 1 device, unpinned (the launcher's
    default) and pinned (``--pin-cpus``: each process on its own CPU), with breakdowns of both: the compute alone of
    an unpinned process runs with the XLA thread pool the launcher gave the unpinned processes."""
    rows, floors, floors_pinned = [], [], []
    for n in [n for n in num_envs if n % 2 == 0] if num_envs else MULTIPROCESS_NUM_ENVS:
        args = ["--num-envs", str(n), "--iterations", str(iterations)]
        one, two, pinned, alone, alone_pinned, before = [], [], [], [], [], []
        for _ in range(pairs):
            if base:
                before.append(_before(args, base))
            one.append(run_json(OURS_PY, "ours/scaling.py", *args, env=forced_devices(2), label="[1 process x 2] "))
            two.append(run_json_processes(2, 1, "ours/scaling.py", *args, "--inventory"))
            pinned.append(run_json_processes(2, 1, "ours/scaling.py", *args, pin_cpus=True))
            threads = {"PJRT_NPROC": str(two[-1]["xla_threads"])} if "xla_threads" in two[-1] else {}
            alone.append(run_json(OURS_PY, "ours/scaling.py", "--num-envs", str(n // 2), "--iterations",
                                  str(iterations), env={**forced_devices(1), **threads}, label="[compute alone] "))
            alone[-1]["xla_threads"] = two[-1].get("xla_threads")  # as the unpinned processes ran (None: all CPUs)
            alone_pinned.append(run_json(OURS_PY, "ours/scaling.py", "--num-envs", str(n // 2), "--iterations",
                                         str(iterations), env=forced_devices(1), cpus="0",
                                         label="[compute alone, one CPU] "))
        check_devices(one + two + pinned, 2)
        reduces = two[0]["all_reduces"]
        sizes = [str(b) for b in sorted(set(reduces["in_loop_bytes"] + reduces["once_bytes"]) | {4})]
        floors.append(run_json_processes(2, 1, "ours/collectives.py", "--bytes", *sizes))
        floors_pinned.append(run_json_processes(2, 1, "ours/collectives.py", "--bytes", *sizes, pin_cpus=True))
        rows.append({"num_envs": n, "devices": 2,
                     "one_process": rates(one), "two_processes": rates(two), "two_over_one": rate_ratios(one, two),
                     "two_pinned": rates(pinned), "pinned_over_one": rate_ratios(one, pinned),
                     "breakdown": iteration_breakdown(two, alone, reduces, floors[-1]["all_reduce_seconds"]),
                     "breakdown_pinned": iteration_breakdown(pinned, alone_pinned, reduces,
                                                             floors_pinned[-1]["all_reduce_seconds"]),
                     "runs": {"one_process": one, "two_processes": two, "two_pinned": pinned, "compute_alone": alone,
                              "compute_alone_one_cpu": alone_pinned}})
        if before:
            rows[-1]["before"] = before_after_rates([b[0] for b in before], [b[1] for b in before], one, two)
            rows[-1]["before_pinned"] = before_after_rates([b[0] for b in before], [b[2] for b in before], one,
                                                           pinned)
    return {"rows": rows, "floors": floors, "floors_pinned": floors_pinned}


def rates(runs: list[dict]) -> dict:
    """The env steps/s of ``runs``: median, spread."""
    return stats([r["env_steps_per_s"] for r in runs])


def rate_ratios(base: list[dict], runs: list[dict]) -> dict:
    """Env steps/s of ``runs`` over those of ``base``, pair by pair."""
    return stats([b["env_steps_per_s"] / a["env_steps_per_s"] for a, b in zip(base, runs)])


def before_after_rates(one_before: list[dict], two_before: list[dict], one: list[dict], two: list[dict]) -> dict:
    """Env steps/s of both layouts before (the baseline's code) and their after/before ratios, pair by pair."""
    return {"one_process": rates(one_before), "two_processes": rates(two_before),
            "two_over_one": rate_ratios(one_before, two_before),
            "one_after_over_before": rate_ratios(one_before, one),
            "two_after_over_before": rate_ratios(two_before, two)}


def iteration_breakdown(two: list[dict], alone: list[dict], reduces: dict, floor: dict[str, float]) -> dict:
    """Milliseconds per 2-process iteration: in all, the compute alone, the floor of the all-reduces it runs
    (each at the transport's raw cost for its bytes), and the rest (waiting: what the collectives cost beyond the
    floor, and the processes waiting for each other)."""
    per_iter = lambda runs: stats([1000 * r["env_steps_per_iteration"] / r["env_steps_per_s"] for r in runs])  # noqa
    total, compute = per_iter(two), per_iter(alone)
    floor_ms = 1000 * sum(floor[str(max(1, b // 4) * 4)] for b in reduces["in_loop_bytes"])
    return {"iteration_ms": total, "compute_ms": compute, "all_reduces_per_iteration": reduces["in_loop_count"],
            "bytes_per_iteration": sum(reduces["in_loop_bytes"]), "all_reduces_per_chunk": reduces["once_count"],
            "floor_ms": floor_ms, "waiting_ms": total["median"] - compute["median"] - floor_ms,
            "over_compute_plus_1_5_floor": total["median"] / (compute["median"] + 1.5 * floor_ms)}


def seeds_over_processes(pairs: int, iterations: int, num_envs: int = 8) -> dict:
    """Agent env steps/s of 2 seeds, one per device: 1 process x 2 devices (train.seeds_per_device: 1) against 2
    processes x 1 device (the layout they choose themselves), each pinned to its own CPU (the figure, target >= 0.9x)
    and unpinned, alternately pair by pair."""
    args = ["--num-envs", str(num_envs), "--iterations", str(iterations), "--num-seeds", str(MULTIPROCESS_SEEDS)]
    one, two, unpinned = [], [], []
    for _ in range(pairs):
        one.append(run_json(OURS_PY, "ours/scaling.py", *args, "--seeds-per-device", "1", env=forced_devices(2),
                            label="[seeds, 1 process x 2] "))
        two.append(run_json_processes(2, 1, "ours/scaling.py", *args, pin_cpus=True))
        unpinned.append(run_json_processes(2, 1, "ours/scaling.py", *args))
    if any(r["seed_groups"] != MULTIPROCESS_SEEDS for r in one + two + unpinned):
        raise RuntimeError("a seeds-over-processes run did not lay one seed per device")

    return {"num_envs": num_envs, "num_seeds": MULTIPROCESS_SEEDS, "iterations": iterations,
            "one_process": rates(one), "two_processes": rates(two), "two_over_one": rate_ratios(one, two),
            "two_unpinned": rates(unpinned), "unpinned_over_one": rate_ratios(one, unpinned),
            "runs": {"one_process": one, "two_processes": two, "two_unpinned": unpinned}}


KEDRO = ROOT / ".venv" / "bin" / "kedro"
# case 7's commands (arguments of the venv's `kedro`), in the order each pair runs them
FIRST_CONTACT_COMMANDS = {"sac": ["run", "--pipeline=sac"], "ppo": ["run", "--pipeline=ppo"],
                          "config_error": ["run", "--pipeline=sac", "--params", "sac.train.lr_typo=1"]}
FIRST_CONTACT_TIMEOUT = 900  # seconds one case-7 process may take (at most --timeout)
# never inherited by a case-7 process: another cache folder, verbose output, another conf/ environment or logging
# config, a console width (rich wraps a non-terminal's lines at 80 columns unless COLUMNS says otherwise)
FIRST_CONTACT_UNSET = ("RLPIPE_JAX_CACHE_DIR", "RLPIPE_VERBOSE", "KEDRO_ENV", "KEDRO_LOGGING_CONFIG", "COLUMNS",
                       "LINES", "PYTHONPATH")


def declared_entry_points(tree: Path) -> dict[str, dict[str, str]]:
    """The entry points ``tree``'s pyproject.toml declares, by group (what installing it writes to
    entry_points.txt)."""
    import tomllib

    project = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    groups = {"console_scripts": project.get("scripts", {}), "gui_scripts": project.get("gui-scripts", {}),
              **project.get("entry-points", {})}
    return {group: eps for group, eps in groups.items() if eps}


def baseline_metadata(tree: Path, folder: Path) -> Path:
    """A ``rlpipe`` dist-info in ``folder`` declaring the entry points of ``tree``'s pyproject.toml. First on the
    PYTHONPATH, it shadows the venv's (installed from the working tree): ``kedro`` loads plugins by entry point, and
    the working tree's (e.g. a ``kedro.init`` hook) name modules the baseline does not have."""
    import re

    found = re.search(r"""__version__\s*=\s*["']([^"']+)""", (tree / "src" / "rlpipe" / "__init__.py").read_text())
    version = found.group(1) if found else "0"
    info = folder / f"rlpipe-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: rlpipe\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items()) + "\n"
        for group, eps in declared_entry_points(tree).items()))
    return folder


def first_contact_env(pythonpath: list[Path] | None = None) -> dict:
    env = {k: v for k, v in environment().items() if k not in FIRST_CONTACT_UNSET}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return env


def check_first_contact_tree(tree: Path, env: dict) -> dict:
    """Which rlpipe (and which rlpipe entry points) a `kedro` in ``tree`` under ``env`` gets: the tree's own (its
    src/ and the entry points its pyproject.toml declares), checked, not assumed."""
    probe = ("import importlib.metadata as m, json, rlpipe; d = m.distribution('rlpipe'); "
             "print(json.dumps({'file': rlpipe.__file__, 'entry_points': sorted([e.group, e.name, e.value] "
             "for e in d.entry_points)}))")
    code, out, err = run_captured([str(OURS_PY), "-c", probe], env, cwd=tree, timeout=120)
    if code != 0:
        raise RuntimeError(f"importing rlpipe in {tree} failed (exit status {code}): {err.strip()[-2000:]}")
    found = json.loads(out.strip().splitlines()[-1])
    if not Path(found["file"]).resolve().is_relative_to((tree / "src").resolve()):
        raise RuntimeError(f"a kedro run in {tree} would import rlpipe from {found['file']}, not from {tree / 'src'}")
    wanted = sorted([group, name, value] for group, eps in declared_entry_points(tree).items()
                    for name, value in eps.items())
    if found["entry_points"] != wanted:
        raise RuntimeError(f"a kedro run in {tree} would see rlpipe's entry points {found['entry_points']}, not "
                           f"those of {tree / 'pyproject.toml'} ({wanted}); reinstall the venv (make setup)")
    return found


def kedro_process(name: str, tree: Path, env: dict, label: str) -> dict:
    """One whole `kedro` process (a ``FIRST_CONTACT_COMMANDS`` entry) in ``tree``: wall seconds, exit status and
    the lines it printed (stdout and stderr are pipes: a non-terminal). Only the config error may exit non-zero."""
    command = [str(KEDRO), *FIRST_CONTACT_COMMANDS[name]]
    started = time.perf_counter()
    code, out, err = run_captured(command, env, cwd=tree, timeout=min(FIRST_CONTACT_TIMEOUT, TIMEOUT))
    seconds = time.perf_counter() - started
    lines = len(out.splitlines()) + len(err.splitlines())
    if code != 0 and name != "config_error":
        raise RuntimeError(f"{label}kedro {' '.join(command[1:])} in {tree} failed (exit status {code}):\n"
                           f"{(out + err)[-4000:]}")
    print(f"  {label}kedro {' '.join(command[1:])}: {seconds:.2f} s, exit status {code}, {lines} lines", flush=True)
    return {"seconds": seconds, "exit_status": code, "lines": lines, "stdout": out[-3000:], "stderr": err[-3000:]}


def case_first_contact(pairs: int, baseline_rev: str | None = BASELINE_FIRST_CONTACT_REV) -> dict:
    """7. First contact: whole-process wall seconds of `kedro run --pipeline=sac`, `--pipeline=ppo` and of a config
    error (`--params sac.train.lr_typo=1`), with a warm cache (one untimed warm-up run of each command per tree
    first), and the lines each prints to a non-terminal; on the working tree and, with ``baseline_rev``, on that
    revision's tree (git worktree, its own conf/, data/, mlflow.db and .jax_cache), alternately pair by pair."""
    with baseline_tree(baseline_rev) if baseline_rev else _no_baseline() as base:
        sides = {"after": (ROOT, first_contact_env(), "[after] " if base else "")}
        check_first_contact_tree(ROOT, sides["after"][1])
        if base:
            shadow = baseline_metadata(base["tree"], base["tree"].parent / "metadata")
            env = first_contact_env([shadow, base["tree"] / "src"])
            check_first_contact_tree(base["tree"], env)
            sides = {"before": (base["tree"], env, f"[before: {base['rev']}] "), **sides}
        runs = {side: {name: [] for name in FIRST_CONTACT_COMMANDS} for side in sides}
        for side, (tree, env, label) in sides.items():  # warm-up: the tree's .jax_cache and MLflow store filled
            for name in FIRST_CONTACT_COMMANDS:
                kedro_process(name, tree, env, f"{label}(warm-up) ")
        for _ in range(pairs):
            for name in FIRST_CONTACT_COMMANDS:
                for side, (tree, env, label) in sides.items():
                    runs[side][name].append(kedro_process(name, tree, env, label))
    rows = {}
    for name, args in FIRST_CONTACT_COMMANDS.items():
        row = {"command": f"kedro {' '.join(args)}"}
        for side in ("before", "after"):
            side_runs = runs.get(side, {}).get(name, [])
            row[side] = {"seconds": stats([r["seconds"] for r in side_runs]),
                         "lines": stats([r["lines"] for r in side_runs]),
                         "exit_statuses": sorted({r["exit_status"] for r in side_runs})}
        row["after_over_before"] = stats([a["seconds"] / b["seconds"] for a, b in
                                          zip(runs["after"][name], runs.get("before", {}).get(name, []))])
        rows[name] = row
    out = {"rows": rows, "runs": runs, "after": "working tree"}
    if base:
        out["baseline_rev"], out["baseline_commit"] = base["rev"], base["commit"]
    return out


HALFCHEETAH_STEPS = 50_000  # case 8: env steps per run, the 10k random prefill included (as SB3's learning_starts)
HALFCHEETAH_SEEDS = 2


def case_any_env(pairs: int, steps: int = HALFCHEETAH_STEPS, seeds: int = HALFCHEETAH_SEEDS) -> dict:
    """8. Any environment. SAC on Gymnasium's HalfCheetah-v5 at identical hyperparameters (conf/sac_halfcheetah:
    256x256, batch 256, one gradient step per env step, 10k random steps first) against Stable-Baselines3, seed by
    seed alternating in fresh processes: gradient steps/s of the learning phase and the deterministic eval return
    after ``steps`` env steps (10 episodes). Then env steps/s of the default SAC config on ``gymnasium:Pendulum-v1``
    (stepped on the host) against gymnax ``Pendulum-v1`` (inside the compiled program), ``pairs`` pairs."""
    ours, theirs = [], []
    for seed in range(seeds):
        common = ["--case", "halfcheetah", "--seed", str(seed), "--steps", str(steps), "--eval-episodes", "10"]
        ours.append(run_json(OURS_PY, "ours/sac.py", *common, label="[ours] "))
        theirs.append(run_json(PEERS_PY, "peers/sb3_sac.py", *common, label="[sb3] "))
    host, compiled = [], []
    for seed in range(pairs):
        for env_id, bucket in (("gymnasium:Pendulum-v1", host), ("Pendulum-v1", compiled)):
            bucket.append(run_json(OURS_PY, "ours/sac.py", "--case", "envspeed", "--env", env_id, "--seed", str(seed)))
    return {"halfcheetah": {"steps": steps, "runs": {"ours": ours, "theirs": theirs},
                            "grad_steps_per_s": paired(ours, theirs, "grad_steps_per_s", True),
                            "eval_return": {"ours": stats([r["eval_return"] for r in ours]),
                                            "theirs": stats([r["eval_return"] for r in theirs])}},
            "pendulum": {"runs": {"gymnasium": host, "gymnax": compiled},
                         "env_steps_per_s": paired(host, compiled, "env_steps_per_s", True),
                         "eval_return": {"gymnasium": stats([r["eval_return"] for r in host]),
                                         "gymnax": stats([r["eval_return"] for r in compiled])}}}


SEEDS_STEPS = {"sac": 12_000, "ppo": 65_536}  # per agent: the default SAC budget; PPO without early stopping


def case_seeds(pairs: int, num_seeds: int = 8) -> dict:
    """9. Experiments at scale. Agent env steps/s of ``num_seeds`` seeds in one program against the same seeds as
    one-seed runs one after the other, SAC and PPO defaults, alternately pair by pair; then a real search (the
    shipped sac_tune config) and its best config against the default at the same budget with fresh seeds."""
    out = {}
    for algo, steps in SEEDS_STEPS.items():
        together, sequential = [], []
        for _ in range(pairs):
            common = ["--algo", algo, "--num-seeds", str(num_seeds), "--steps", str(steps)]
            together.append(run_json(OURS_PY, "ours/seeds.py", *common, "--mode", "together"))
            sequential.append(run_json(OURS_PY, "ours/seeds.py", *common, "--mode", "sequential"))
        out[algo] = {"steps": steps, "num_seeds": num_seeds, "runs": {"together": together, "sequential": sequential},
                     "agent_env_steps_per_s": paired(together, sequential, "agent_env_steps_per_s", True),
                     "seconds": paired(together, sequential, "seconds", False)}
    out["search"] = run_json(OURS_PY, "ours/search.py", timeout=TIMEOUT)
    return out


RECURRENT_ENVS = ("ppo_cartpole_novel", "ppo_pendulum_novel")


def case_recurrent(pairs: int) -> dict:
    """10. Memory. The shipped partially observable configs as shipped (LSTM) and with a feed-forward MLP in place of
    the cell, at the same budget and seed, alternately, seeds 0..pairs-1: wall time, env steps/s, final eval."""
    out = {}
    for env in RECURRENT_ENVS:
        runs = {"recurrent": [], "feed-forward": []}
        for seed in range(pairs):
            runs["recurrent"].append(run_json(OURS_PY, "ours/recurrent.py", "--env", env, "--seed", str(seed)))
            runs["feed-forward"].append(run_json(OURS_PY, "ours/recurrent.py", "--env", env, "--seed", str(seed),
                                                 "--feed-forward"))
        out[env] = {"runs": runs, **{f"{kind}_{key}": stats([r[key] for r in rs]) for kind, rs in runs.items()
                                     for key in ("seconds", "env_steps_per_s", "final_eval_mean", "env_steps")}}
    return out


HISTORY_STEPS = {"sac": 40_000, "ppo": 400_000}


def case_history(pairs: int) -> dict:
    """11. Full-resolution histories. Env steps/s of the default SAC and PPO configs with the history recorded
    inside the compiled chunk (the default 50 points per progress line) and without (0), alternately."""
    out = {}
    for algo, steps in HISTORY_STEPS.items():
        inside, outside = [], []
        for _ in range(pairs):
            common = ["--algo", algo, "--steps", str(steps)]
            inside.append(run_json(OURS_PY, "ours/history.py", *common, "--points", "50"))
            outside.append(run_json(OURS_PY, "ours/history.py", *common, "--points", "0"))
        out[algo] = {"steps": steps, "runs": {"inside": inside, "outside": outside},
                     "env_steps_per_s": paired(inside, outside, "env_steps_per_s", True)}
    return out


CURRICULUM_STEPS = (40_000, 100_000)


def case_curriculum(pairs: int) -> dict:
    """12. Learning from failures and from demonstrations. The randomized-Pendulum SAC config (mass and length in
    [0.5, 2.0]) with its curriculum and with uniform sampling, 4 seeds in one program each, alternately, at each
    budget of CURRICULUM_STEPS: the final eval's worst-decile and mean return per seed. Then the imitation chain."""
    out = {}
    for steps in CURRICULUM_STEPS:
        runs = {"curriculum": [], "uniform": []}
        for _ in range(max(1, pairs // 3)):
            runs["curriculum"].append(run_json(OURS_PY, "ours/curriculum.py", "--steps", str(steps)))
            runs["uniform"].append(run_json(OURS_PY, "ours/curriculum.py", "--steps", str(steps), "--uniform"))
        out[str(steps)] = {"runs": runs, **{
            f"{kind}_{key}": stats([v for r in rs for v in r[key]]) for kind, rs in runs.items()
            for key in ("eval_worst_decile", "eval_mean")}}
    out["imitation"] = run_json(OURS_PY, "ours/imitation.py", "--seeds", "3", timeout=TIMEOUT)
    return out


MASAC_STEPS = 150_000
JAXMARL_REPO = os.environ.get("JAXMARL_REPO", "/work/.mirror/FLAIROx+JaxMARL/repo")


def case_masac(pairs: int) -> dict:
    """13. Many agents. Multi-agent SAC with attention critics against independent critics (3 seeds in one program
    each, the shipped config at MASAC_STEPS joint env steps), and JaxMARL's IPPO script at the same budget."""
    out = {"steps": MASAC_STEPS, "runs": {"attention": [], "independent": [], "attention, discrete actions": []}}
    for _ in range(max(1, pairs // 3)):
        for form in ("attention", "independent"):
            out["runs"][form].append(run_json(OURS_PY, "ours/masac.py", "--critic-form", form, "--num-seeds", "3",
                                              "--steps", str(MASAC_STEPS)))
        # the categorical actor on the task's discrete form: the same action space as IPPO's
        out["runs"]["attention, discrete actions"].append(run_json(
            OURS_PY, "ours/masac.py", "--critic-form", "attention", "--actions", "discrete", "--num-seeds", "3",
            "--steps", str(MASAC_STEPS), label="[discrete] "))
    if Path(JAXMARL_REPO).exists():
        out["ippo"] = run_json(PEERS_PY, "peers/ippo_jaxmarl.py", "--repo", JAXMARL_REPO, "--steps",
                               str(MASAC_STEPS), "--seeds", "3", timeout=TIMEOUT)
    else:
        out["ippo"] = {"skipped": f"no JaxMARL repository at {JAXMARL_REPO} (set JAXMARL_REPO)"}
    return out


CASES = {"1": ("SAC Pendulum-v1 to -200", case_sac_threshold), "2": ("SAC identical hyperparameters", case_sac_throughput),
         "3": ("PPO CartPole-v1 to 475", case_ppo), "4": ("compilation", case_compile), "5": ("scaling", case_scaling),
         "6": ("multi-process: the cost of crossing processes", case_multiprocess),
         "7": ("first contact: whole-process times", case_first_contact),
         "8": ("any environment: HalfCheetah-v5 against SB3, host vs compiled env stepping", case_any_env),
         "9": ("experiments at scale: many seeds in one program, a real search", case_seeds),
         "10": ("memory: recurrent PPO on partially observable tasks against feed-forward", case_recurrent),
         "11": ("full-resolution histories: env steps/s with the in-chunk history and without", case_history),
         "12": ("learning from failures and demonstrations: curriculum vs uniform, the imitation chain",
                case_curriculum),
         "13": ("many agents: multi-agent SAC with attention critics, independent critics, JaxMARL's IPPO",
                case_masac)}


# ----------------------------------------------------------------------------------------------------- report
def fmt(x, digits=3):
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 999.5 else f"{x:.{digits}g}"


def spread(s: dict, digits=3) -> str:
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})" if s["n"] else "n/a"


def multiprocess_before_after_lines(c: dict) -> list[str]:
    """Case 6's figures on the baseline's code, run in the same pairs (absent without a baseline)."""
    rows = [r for r in c["rows"] if "before" in r]
    if not rows:
        return []
    lines = ["", f"Before and after: the same runs on the code of `{c['baseline_rev']}` in the same pairs (before, "
                 "then after), env steps/s; ratios after/before:", "",
             "| num_envs | 1 process x 2, before | after / before | 2 processes x 1, before | after / before "
             "| 2 processes / 1 process, before |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        b = r["before"]
        lines.append(f"| {r['num_envs']} | {spread(b['one_process'])} | {spread(b['one_after_over_before'])}× "
                     f"| {spread(b['two_processes'])} | {spread(b['two_after_over_before'])}× "
                     f"| {spread(b['two_over_one'])}× |")
        if "before_pinned" in r:
            p = r["before_pinned"]
            lines.append(f"| {r['num_envs']}, pinned | | | {spread(p['two_processes'])} "
                         f"| {spread(p['two_after_over_before'])}× | {spread(p['two_over_one'])}× |")
    return lines


def pool_sizes(runs: list[dict]) -> str:
    """The XLA thread pool sizes the launcher gave ``runs`` (``PJRT_NPROC``, e.g. "1" or "1/2"); "" for runs of a
    launcher that did not size them."""
    return "/".join(map(str, sorted({r["xla_threads"] for r in runs if r.get("xla_threads")})))


def unpinned_pools(runs: list[dict]) -> str:
    """What the unpinned processes' XLA thread pools were: sized by the launcher (said in its output) or, in results
    from before it did, each as large as all the cores."""
    if not (sizes := pool_sizes(runs)):
        return "the 2 processes' thread pools share both cores"
    return f"each process's XLA thread pool sized to its share of the CPUs ({sizes} thread(s))"


def multiprocess_targets(c: dict) -> list[tuple[str, bool, str]]:
    """Case 6's targets: a 2-process iteration takes at most its compute plus 1.5 times the floor of its all-reduces
    (from the medians), and 2 seeds over 2 processes reach >= 0.9x the same seeds on 1 process x 2 devices (median
    of the pairs), pinned and unpinned (the launcher's default)."""
    out = [(f"6: a 2-process iteration ≤ its compute + 1.5 × the floor, {r['num_envs']} envs{how}",
            r[key]["over_compute_plus_1_5_floor"] <= 1, f"{fmt(r[key]['over_compute_plus_1_5_floor'])}×")
           for r in c["rows"] for key, how in (("breakdown", ", unpinned"), ("breakdown_pinned", ", pinned"))
           if key in r]
    seeds = c.get("seeds")
    if not seeds:
        return out
    rows = [("6: 2 seeds over 2 pinned processes ≥ 0.9× one process with 2 devices", seeds["two_over_one"])]
    if "unpinned_over_one" in seeds:
        rows.append(("6: the same, unpinned (the launcher's default)", seeds["unpinned_over_one"]))
    return out + [(name, ratio["median"] >= 0.9, f"{spread(ratio)}×") for name, ratio in rows]


def multiprocess_breakdown_lines(c: dict) -> list[str]:
    """Case 6's floor, per-iteration breakdown and seeds-over-processes figure (absent in older results)."""
    lines = [""]
    for key, how in (("floors", ""), ("floors_pinned", ", each process pinned to its own CPU")):
        for floor in c.get(key, [])[:1]:
            lines += [f"Floor{how}: a raw all-reduce between the 2 processes (psum in a shard_map, chained in a "
                      "loop), ms: " + ", ".join(f"{b} B {1000 * s:.3f}" for b, s in floor["all_reduce_seconds"].items()),
                      ""]
    if c["rows"] and "breakdown" in c["rows"][0]:
        if any("compute_alone_one_cpu" in r["runs"] for r in c["rows"]):
            sizes = pool_sizes([a for r in c["rows"] for a in r["runs"]["compute_alone"]])
            pools = f", with the unpinned processes' XLA thread pool ({sizes} thread(s))" if sizes else ""
            lines += ["Compute alone: 1 process x 1 device on half the envs, each device's work without collectives "
                      f"(on both CPUs{pools}; for the pinned rows on one CPU, as each pinned process runs).", ""]
        lines += ["| num_envs | 2-process iteration, ms | compute alone, ms | all-reduces / iteration (bytes) "
                  "| their floor, ms | waiting, ms | iteration / (compute + 1.5 x floor) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in c["rows"]:
            for key, how in (("breakdown", ""), ("breakdown_pinned", ", pinned")):
                if key not in r:
                    continue
                b = r[key]
                lines.append(f"| {r['num_envs']}{how} | {fmt(b['iteration_ms']['median'])} "
                             f"| {fmt(b['compute_ms']['median'])} | {b['all_reduces_per_iteration']} "
                             f"({b['bytes_per_iteration']:,}) | {fmt(b['floor_ms'])} | {fmt(b['waiting_ms'])} "
                             f"| {fmt(b['over_compute_plus_1_5_floor'])} |")
        lines.append("")
    if "seeds" in c:
        s = c["seeds"]
        pinned = " (`--pin-cpus`: each on its own CPU)" if "two_unpinned" in s else ""
        lines += [f"Seeds over processes ({s['num_seeds']} seeds, one per device, {s['num_envs']} envs each): "
                  f"1 process x 2 devices {spread(s['one_process'])}, 2 processes x 1 device{pinned} "
                  f"{spread(s['two_processes'])} agent env steps/s: {spread(s['two_over_one'])}× (target >= 0.9×)."]
        if "two_unpinned" in s:
            lines.append(f"Unpinned, {unpinned_pools(s['runs']['two_unpinned'])}: {spread(s['two_unpinned'])} "
                         f"agent env steps/s, {spread(s['unpinned_over_one'])}×.")
        lines.append("")
    return lines


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
        c = results["cases"]["5"]
        rows, ba = c["rows"], c.get("before_after")
        lines += ["## 5. Scaling of the SAC train node (1 gradient step per iteration, batch 128)", "",
                  f"{c.get('iterations', '?')} iterations per run (3 logged chunks; the median chunk's rate).", ""]
        if ba is None:
            lines += ["| devices | num_envs | env steps/s | peak RSS MiB |", "| --- | --- | --- | --- |"]
            lines += [f"| {r['devices']} | {r['num_envs']} | {fmt(r['env_steps_per_s'])} | {fmt(r['peak_rss_mb'])} |"
                      for r in rows]
        else:
            on_pmap = ba["baseline_rev"] == BASELINE_REV
            lines += [f"Before: `{ba['baseline_rev']}` ({ba['baseline_commit'][:12]}{', pmap' if on_pmap else ''}; with "
                      f"`{COPY_FLAG}`, which the working tree sets at import); "
                      "after: the working tree (jit(shard_map) on a device mesh); both run in this invocation, alternately pair by pair. "
                      "Env steps/s are medians (min–max) over pairs; after/before is the per-pair ratio; ⚠ marks a "
                      f"median ratio below {ba['flag_below']}. The baseline predates the training history recorded "
                      "inside the compiled chunk (issue 14, `train.history_points_per_log`, default 50): 'history "
                      "off' runs the working tree with it off (`--history-points 0`), the same work as the baseline "
                      "does; 'after' is the default, with it. A point below 0.95 after the screening pairs is measured "
                      f"with {ba.get('confirm_pairs', 0)} more pairs (its row then says how many pairs count, and "
                      "what the screening gave).", "",
                      "| devices | num_envs | env steps/s (after) | env steps/s (before) | after/before "
                      "| env steps/s (after, history off) | history off/before | peak RSS MiB (after) |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r, b, screen in zip(rows, ba["rows"], ba.get("screening_rows", ba["rows"])):
                flag = " ⚠" if b["flagged"] else ""
                same = b.get("history_off_over_before")
                same_cells = (f"{spread(b['after_history_off'])} | {spread(same)}×"
                              f"{' ⚠' if b.get('history_off_flagged') else ''}" if same and same["n"] else "– | –")
                confirmed = (f" ({b['pairs']} pairs; screening {fmt(screen['after_over_before']['median'])}× / "
                             f"{fmt(screen['history_off_over_before']['median'])}×)"
                             if b.get("pairs", 0) > b.get("screening_pairs", b.get("pairs", 0)) else "")
                lines.append(f"| {r['devices']} | {r['num_envs']}{confirmed} | {spread(b['after'])} | "
                             f"{spread(b['before'])} | {spread(b['after_over_before'])}×{flag} | {same_cells} | "
                             f"{fmt(r['peak_rss_mb'])} |")
            flagged = [f"{b['devices']} device(s) x {b['num_envs']} envs ({fmt(b['after_over_before']['median'])}×)"
                       for b in ba["rows"] if b["flagged"]]
            targets.append((f"5: no single-process scaling figure below {ba['flag_below']}× of {ba['baseline_rev']}'s"
                            + (" (before the move off pmap)" if on_pmap else "") + ", default config", not flagged,
                            "; ".join(flagged) or "none below"))
            if any((b.get("history_off_over_before") or {}).get("n") for b in ba["rows"]):
                same_flagged = [f"{b['devices']} device(s) x {b['num_envs']} envs "
                                f"({fmt(b['history_off_over_before']['median'])}×)"
                                for b in ba["rows"] if b.get("history_off_flagged")]
                targets.append(("5: the same, on the baseline's work (in-chunk history off)", not same_flagged,
                                "; ".join(same_flagged) or "none below"))
        lines += ["", f"Replay buffer: {rows[0]['buffer_bytes_per_transition']} bytes per transition (Pendulum: "
                      "float32 obs, action, reward, discount, next obs).", ""]
    if "6" in results["cases"]:
        rows = results["cases"]["6"]["rows"]
        lines += ["## 6. Multi-process: the cost of crossing processes (SAC train node, 1 gradient step per iteration, "
                  "batch 128, 2 devices)", "",
                  "1 process with 2 forced CPU devices against 2 processes of 1 device each (`python -m rlpipe.launch "
                  "--processes 2 --devices-per-process 1`: jax.distributed on this machine, collectives over gloo), "
                  "alternately pair by pair; the 2-process figure is process 0's. Unpinned, "
                  f"{unpinned_pools([run for r in rows for run in r['runs']['two_processes']])}.", "",
                  "| num_envs | 1 process x 2 devices, env steps/s | 2 processes x 1 device, env steps/s "
                  "| 2 processes / 1 process | the same, each pinned to its own CPU (`--pin-cpus`) | pinned / 1 "
                  "process |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['num_envs']} | {spread(r['one_process'])} | {spread(r['two_processes'])} | "
                  f"{spread(r['two_over_one'])}× | " + (f"{spread(r['two_pinned'])} | {spread(r['pinned_over_one'])}× |"
                                                        if "two_pinned" in r else "| |") for r in rows]
        lines += multiprocess_before_after_lines(results["cases"]["6"])
        lines += multiprocess_breakdown_lines(results["cases"]["6"])
        targets += multiprocess_targets(results["cases"]["6"])
    if "7" in results["cases"]:
        c = results["cases"]["7"]
        rows = c["rows"]
        before = (f"`{c['baseline_rev']}` ({c['baseline_commit'][:12]}, in a git worktree with its own conf/, data/, "
                  "mlflow.db and .jax_cache)" if "baseline_rev" in c else "not run")
        lines += ["## 7. First contact: whole-process times (warm cache)", "",
                  f"Wall seconds of whole `kedro` processes after one untimed warm-up run of each command per tree "
                  f"(JAX compilation cache and MLflow store filled); before: {before}; after: the working tree; "
                  "alternately pair by pair; after/before is the per-pair ratio. Output lines: stdout and stderr "
                  "together, to a pipe (not a terminal).", "",
                  "| command | before s | after s | after/before | exit status (before / after) "
                  "| output lines (before / after) |",
                  "| --- | --- | --- | --- | --- | --- |"]

        def statuses(side: dict) -> str:
            return ", ".join(str(s) for s in side["exit_statuses"]) or "n/a"

        def was(value: str) -> str:
            return f" (before: {value})" if "baseline_rev" in c else ""

        for r in rows.values():
            ratio = f"{spread(r['after_over_before'])}×" if r["after_over_before"]["n"] else "n/a"
            lines.append(f"| `{r['command']}` | {spread(r['before']['seconds'])} | {spread(r['after']['seconds'])} | "
                         f"{ratio} | {statuses(r['before'])} / {statuses(r['after'])} | "
                         f"{spread(r['before']['lines'])} / {spread(r['after']['lines'])} |")
        lines.append("")
        for name, limit in (("sac", 10), ("ppo", 10)):
            s, b = rows[name]["after"]["seconds"]["median"], rows[name]["before"]["seconds"]["median"]
            targets.append((f"7: `{rows[name]['command']}` ≤ {limit} s whole process (warm cache)",
                            s is not None and s <= limit, f"{fmt(s)} s{was(f'{fmt(b)} s')}"))
        err = rows["config_error"]
        s, b = err["after"]["seconds"]["median"], err["before"]["seconds"]["median"]
        targets += [(f"7: a config error (`{err['command']}`) ends in ≤ 2.5 s", s is not None and s <= 2.5,
                     f"{fmt(s)} s{was(f'{fmt(b)} s')}"),
                    ("7: a config error exits non-zero",
                     bool(err["after"]["exit_statuses"]) and 0 not in err["after"]["exit_statuses"],
                     f"exit status {statuses(err['after'])}{was(statuses(err['before']))}")]
        n = rows["sac"]["after"]["lines"]["max"]
        targets.append(("7: a default `kedro run --pipeline=sac` prints ≤ 40 lines (non-terminal)",
                        n is not None and n <= 40,
                        f"{fmt(n)} lines (most of any run){was(fmt(rows['sac']['before']['lines']['max']))}"))
    if "8" in results["cases"]:
        c = results["cases"]["8"]
        hc, pe = c["halfcheetah"], c["pendulum"]
        g, r = hc["grad_steps_per_s"], hc["eval_return"]
        lines += ["## 8. Any environment", "",
                  f"SAC on Gymnasium's HalfCheetah-v5 (MuJoCo, stepped on the host in ours), identical "
                  f"hyperparameters (256×256, batch 256, 1 env, 1 gradient step per env step, 10k random steps "
                  f"first, lr 3e-4), {hc['steps']:,} env steps per run, {r['ours']['n']} seeds per side, ours and "
                  "Stable-Baselines3 alternating in fresh processes; deterministic eval return over 10 episodes at "
                  "the end.", "",
                  "| | ours | Stable-Baselines3 | ours/SB3 |", "| --- | --- | --- | --- |",
                  f"| gradient steps/s (learning phase) | {spread(g['ours'])} | {spread(g['theirs'])} | "
                  f"{spread(g['advantage'])}× |",
                  f"| eval return after {hc['steps']:,} env steps | {spread(r['ours'], 4)} | {spread(r['theirs'], 4)} "
                  "| |", "",
                  "SAC's default config on Pendulum-v1, env steps/s of the training calls: Gymnasium's env stepped on "
                  "the host (io_callback per step) against gymnax's inside the compiled program.", "",
                  "| | gymnasium:Pendulum-v1 | gymnax Pendulum-v1 | gymnasium/gymnax |", "| --- | --- | --- | --- |",
                  f"| env steps/s | {spread(pe['env_steps_per_s']['ours'])} | {spread(pe['env_steps_per_s']['theirs'])} "
                  f"| {spread(pe['env_steps_per_s']['advantage'])}× |",
                  f"| final eval return (64 scenarios) | {spread(pe['eval_return']['gymnasium'], 4)} | "
                  f"{spread(pe['eval_return']['gymnax'], 4)} | |", ""]
        ratio = g["advantage"]["median"]
        targets += [("8: HalfCheetah-v5 SAC gradient steps/s ≥ 2.5× SB3's", ratio is not None and ratio >= 2.5,
                     f"{fmt(ratio)}×"),
                    ("8: HalfCheetah-v5 eval return after the same steps not below SB3's",
                     r["ours"]["median"] is not None and r["theirs"]["median"] is not None
                     and r["ours"]["median"] >= r["theirs"]["median"],
                     f"{fmt(r['ours']['median'], 4)} vs {fmt(r['theirs']['median'], 4)} (medians)")]
    if "9" in results["cases"]:
        c = results["cases"]["9"]
        lines += ["## 9. Experiments at scale", "",
                  "Agent env steps/s (env steps summed over the agents, per second of the compiled training calls) of "
                  "N seeds in one program (`train.num_seeds: N`) against the same N seeds as one-seed runs one after "
                  "the other; whole seconds include compilation and the evaluations. Default configs, fixed budgets "
                  "(PPO without early stopping); fresh processes, alternately pair by pair.", "",
                  "| algorithm | seeds | env steps per agent | together, agent env steps/s | one after the other | "
                  "together/sequential | together s | sequential s | sequential/together (whole s) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for algo in SEEDS_STEPS:
            a = c[algo]
            rate, secs = a["agent_env_steps_per_s"], a["seconds"]
            lines.append(f"| {algo} | {a['num_seeds']} | {a['steps']:,} | {spread(rate['ours'])} | "
                         f"{spread(rate['theirs'])} | {spread(rate['advantage'])}× | {spread(secs['ours'])} | "
                         f"{spread(secs['theirs'])} | {spread(secs['advantage'])}× |")
            ratio = rate["advantage"]["median"]
            targets.append((f"9: {algo}, {a['num_seeds']} seeds in one program ≥ 4× the agent env steps/s of "
                            "sequential runs", ratio is not None and ratio >= 4, f"{fmt(ratio)}×"))
        s9 = c["search"]
        best, default = s9["best"], s9["default"]
        lines += ["", f"A search with the shipped `sac_tune` config: {s9['n_trials']} trials of {s9['num_seeds']} "
                  f"seeds at {s9['budget_env_steps']:,} env steps each, {fmt(s9['search_seconds'])} s. Then the best "
                  f"config and the default one at the same budget, each with the fresh seeds {s9['eval_seed']}–"
                  f"{s9['eval_seed'] + s9['num_seeds'] - 1} (no trial used them), on the same 64 held-out scenarios: "
                  "the IQM of the agents' mean returns with its 95% stratified bootstrap interval.", "",
                  "| config | IQM | 95% CI | mean | learning rate | batch | gradient steps/iter | tau | gamma | hidden |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in (("best", best), ("default", default)):
            q = r["params"]
            lines.append(f"| {name} | {fmt(r['iqm'], 4)} | {fmt(r['iqm_ci_low'], 4)} to {fmt(r['iqm_ci_high'], 4)} | "
                         f"{fmt(r['mean'], 4)} | {q['learning_rate']} | {q['batch_size']} | "
                         f"{q['grad_updates_per_iter']} | {q['tau']} | {q['gamma']} | {q['hidden_sizes']} |")
        lines.append("")
        targets.append(("9: the searched config's IQM beats the default config's at the same budget (fresh seeds)",
                        best["iqm"] > default["iqm"], f"{fmt(best['iqm'], 4)} vs {fmt(default['iqm'], 4)}"))
    if "10" in results["cases"]:
        c = results["cases"]["10"]
        lines += ["## 10. Memory: recurrent PPO on partially observable tasks", "",
                  "The shipped configs (`kedro run --pipeline=ppo --env <env>`) as shipped (LSTM) and with a "
                  "feed-forward 64×64 MLP in place of the cell, same budget, seeds and early stopping; fresh "
                  "processes. Seconds: the train call (compilation and evaluations included); env steps/s: the "
                  "compiled training alone. Eval: mean over the config's 64 held-out scenarios of the final policy.",
                  "", "| env | network | seconds | env steps/s | env steps spent | final eval | runs reaching the "
                  "target | target |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for env in RECURRENT_ENVS:
            for kind in ("recurrent", "feed-forward"):
                rs = c[env]["runs"][kind]
                reached = sum(r["final_eval_mean"] >= r["target"] for r in rs)
                lines.append(f"| {env} | {rs[0]['network']} | {spread(c[env][f'{kind}_seconds'])} | "
                             f"{spread(c[env][f'{kind}_env_steps_per_s'])} | {spread(c[env][f'{kind}_env_steps'])} | "
                             f"{', '.join(fmt(r['final_eval_mean'], 4) for r in rs)} | {reached} of {len(rs)} | "
                             f"{fmt(rs[0]['target'], 4)} |")
        lines.append("")
        for env, need in (("ppo_cartpole_novel", 475.0), ("ppo_pendulum_novel", -250.0)):
            rs = c[env]["runs"]["recurrent"]
            worst = min(r["final_eval_mean"] for r in rs)
            targets.append((f"10: {env} (LSTM) final eval ≥ {fmt(need, 4)} in every run",
                            worst >= need, f"worst of {len(rs)}: {fmt(worst, 4)}"))
        ff = c["ppo_cartpole_novel"]["runs"]["feed-forward"]
        targets.append(("10: ppo_cartpole_novel without recurrence stays clearly below (< 200)",
                        max(r["final_eval_mean"] for r in ff) < 200,
                        f"best of {len(ff)}: {fmt(max(r['final_eval_mean'] for r in ff), 4)}"))
    if "11" in results["cases"]:
        c = results["cases"]["11"]
        lines += ["## 11. Full-resolution histories", "",
                  "Env steps/s of the compiled training calls, default configs at a fixed budget (no evaluation, "
                  "no early stopping), with the history recorded inside the chunk (50 points per progress line) "
                  "and without (one point per line); fresh processes, alternately pair by pair.", "",
                  "| algorithm | env steps | history points | with, env steps/s | without | with/without |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for algo in HISTORY_STEPS:
            a = c[algo]
            rate = a["env_steps_per_s"]
            lines.append(f"| {algo} | {a['steps']:,} | {a['runs']['inside'][0]['history_points']:,} vs "
                         f"{a['runs']['outside'][0]['history_points']:,} | {spread(rate['ours'])} | "
                         f"{spread(rate['theirs'])} | {spread(rate['advantage'])}× |")
            ratio = rate["advantage"]
            targets.append((f"11: {algo} with the in-chunk history at no measurable cost (pair ratios' range "
                            "reaches 1)", ratio["max"] is not None and ratio["max"] >= 1.0,
                            f"{fmt(ratio['median'])}× ({fmt(ratio['min'])}–{fmt(ratio['max'])})"))
        lines.append("")
    if "12" in results["cases"]:
        c = results["cases"]["12"]
        lines += ["## 12. Learning from failures and from demonstrations", "",
                  "SAC on Pendulum-v1 with mass and length in [0.5, 2.0] (conf/sac_pendulum_randomized), 4 seeds in "
                  "one program, scored on the same 64 held-out scenarios: each seed's worst-decile return (the mean "
                  "of its 7 lowest scenario returns) and mean return; median (min–max) over the seeds.", "",
                  "| env steps | sampling | worst-decile eval return | mean eval return | wall s |",
                  "| --- | --- | --- | --- | --- |"]
        for steps in CURRICULUM_STEPS:
            a = c[str(steps)]
            for kind in ("curriculum", "uniform"):
                lines.append(f"| {steps:,} | {kind} | {spread(a[f'{kind}_eval_worst_decile'], 4)} | "
                             f"{spread(a[f'{kind}_eval_mean'], 4)} | "
                             f"{fmt(statistics.median(r['seconds'] for r in a['runs'][kind]))} |")
            cur, uni = a["curriculum_eval_worst_decile"], a["uniform_eval_worst_decile"]
            targets.append((f"12: curriculum's worst-decile eval return clearly above uniform's at {steps:,} env "
                            "steps (its worst seed above uniform's median seed)", cur["min"] > uni["median"],
                            f"medians {fmt(cur['median'], 4)} vs {fmt(uni['median'], 4)}; curriculum's worst seed "
                            f"{fmt(cur['min'], 4)}"))
        m = c["imitation"]
        lines += ["", "The imitation chain (`kedro run --pipeline=imitation_chain`, then `--pipeline=ppo_imitation` "
                  "with seeds 1, 2 on the same demonstrations): PPO with task_weight 0, 409,600 env steps.", "",
                  f"Expert (SAC) eval mean {fmt(m['expert_eval_mean'], 4)}; demonstrations {m['demonstrations']:,} "
                  f"transitions, mean return {fmt(m['demonstrations_return_mean'], 4)}; imitator eval means "
                  f"{', '.join(fmt(v, 4) for v in m['imitator_eval_mean'])} (seeds "
                  f"{', '.join(map(str, m['imitator_seeds']))}); the chain took {fmt(m['chain_seconds'])} s, each "
                  f"further imitator {', '.join(fmt(v) for v in m['imitator_seconds'])} s.", ""]
        targets.append(("12: the imitator (task_weight 0) reaches an eval mean >= -400 (every seed)",
                        min(m["imitator_eval_mean"]) >= -400,
                        ", ".join(fmt(v, 4) for v in m["imitator_eval_mean"])))
    if "13" in results["cases"]:
        c = results["cases"]["13"]
        lines += ["## 13. Many agents", "",
                  f"MPE_simple_spread_v3 (3 agents), {c['steps']:,} joint env steps, 3 seeds each; team return = the "
                  "sum of the agents' rewards over an episode (25 steps). Training return: the mean over the last "
                  "progress intervals (stochastic policies; IPPO: its LogWrapper's returned_episode_returns over its "
                  "last 5 updates, an agent's return times the number of agents). Eval: rlpipe's deterministic "
                  "policy on its 32 held-out scenarios. IPPO acts with discrete actions (its script's setting); "
                  "rlpipe with continuous ones (action_type: Continuous) and, in the 'discrete actions' row, with the "
                  "same 5 discrete actions per agent as IPPO (categorical actor).", "",
                  "| learner | training team return per seed | eval team return per seed | wall s (3 seeds) |",
                  "| --- | --- | --- | --- |"]
        labels = {"attention": "masac, attention critics", "independent": "masac, independent critics",
                  "attention, discrete actions": "masac, attention critics, discrete actions"}
        for form, label in labels.items():
            for r in c["runs"].get(form, []):
                lines.append(f"| {label} | {', '.join(fmt(v, 4) for v in r['train_team_return'])} | "
                             f"{', '.join(fmt(v, 4) for v in r['eval_team_return'])} | {fmt(r['seconds'])} |")
        ippo = c["ippo"]
        if "skipped" in ippo:
            lines.append(f"| JaxMARL IPPO | skipped: {ippo['skipped']} | | |")
        else:
            lines.append(f"| JaxMARL IPPO ({ippo['script']} @ {ippo['commit'][:7]}) | "
                         f"{', '.join(fmt(v, 4) for v in ippo['team_return_last_updates'])} | n/a | "
                         f"{fmt(ippo['seconds'])} |")
        lines.append("")
        att, ind = c["runs"]["attention"][0], c["runs"]["independent"][0]
        targets.append(("13: attention critics' training team return above independent critics' (every seed pair)",
                        min(att["train_team_return"]) > max(ind["train_team_return"]),
                        f"{fmt(statistics.median(att['train_team_return']), 4)} vs "
                        f"{fmt(statistics.median(ind['train_team_return']), 4)} (medians)"))
        if "skipped" not in ippo:
            targets.append(("13: masac's training team return above JaxMARL IPPO's at the same env steps (every seed)",
                            min(att["train_team_return"]) > max(ippo["team_return_last_updates"]),
                            f"{fmt(statistics.median(att['train_team_return']), 4)} vs "
                            f"{fmt(statistics.median(ippo['team_return_last_updates']), 4)} (medians)"))
            if c["runs"].get("attention, discrete actions"):
                disc = c["runs"]["attention, discrete actions"][0]
                targets.append(("13: masac with discrete actions above JaxMARL IPPO (discrete) at the same env steps "
                                "(every seed)",
                                min(disc["train_team_return"]) > max(ippo["team_return_last_updates"]),
                                f"{fmt(statistics.median(disc['train_team_return']), 4)} vs "
                                f"{fmt(statistics.median(ippo['team_return_last_updates']), 4)} (medians)"))
    if targets:
        lines += ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
        lines += [f"| {name} | {'yes' if ok else 'NO'} | {value} |" for name, ok, value in targets]
    return "\n".join(lines) + "\n"


def main():
    global TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"training iterations per scaling run (cases 5 and 6, default {SCALING_ITERATIONS} and "
                             f"{MULTIPROCESS_ITERATIONS}; at least 3); fewer for a quick look")
    parser.add_argument("--num-envs", help="comma-separated num_envs replacing the sweeps of cases 5 and 6 "
                                           "(values not divisible by the device count are skipped there)")
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="the revision case 5 compares against (git worktree); 'none' skips the comparison")
    parser.add_argument("--multiprocess-baseline-rev", default=MULTIPROCESS_BASELINE_REV,
                        help="the revision case 6 compares against (git worktree); 'none' skips its 'before' runs")
    parser.add_argument("--first-contact-baseline-rev", default=BASELINE_FIRST_CONTACT_REV,
                        help="the revision case 7 compares against (git worktree); 'none' skips its 'before' runs")
    parser.add_argument("--halfcheetah-seeds", type=int, default=HALFCHEETAH_SEEDS,
                        help="case 8: seeds per side of the HalfCheetah-v5 comparison")
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds any one benchmark process may take")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the .json and .md results go")
    parser.add_argument("--no-save", action="store_true", help="print the table only; write no result files")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if unknown := [c for c in cases if c not in CASES]:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    if args.iterations is not None and args.iterations < 3:
        parser.error("--iterations must be at least 3 (three logged chunks per scaling run)")
    num_envs = [int(n) for n in args.num_envs.split(",")] if args.num_envs else None
    baseline_rev = None if args.baseline_rev.lower() in ("", "none") else args.baseline_rev
    multiprocess_rev = (None if args.multiprocess_baseline_rev.lower() in ("", "none")
                        else args.multiprocess_baseline_rev)
    first_contact_rev = (None if args.first_contact_baseline_rev.lower() in ("", "none")
                         else args.first_contact_baseline_rev)
    TIMEOUT = args.timeout
    if not PEERS_PY.exists() and set(cases) & {"1", "2", "3", "8"}:
        sys.exit("the peers' venv is missing: run `make bench` (it creates .venv-peers), or only --cases 4,5,6,7")
    # a SIGTERM unwinds like Ctrl-C: running benchmark processes are killed, the baseline worktree removed
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    results = {"machine": machine(), "pairs": args.pairs, "cases": {}}
    for case in cases:
        title, fn = CASES[case]
        print(f"case {case}: {title}", flush=True)
        if case == "5":
            results["cases"][case] = fn(args.pairs, args.iterations or SCALING_ITERATIONS, num_envs, baseline_rev)
        elif case == "6":
            results["cases"][case] = fn(args.pairs, args.iterations or MULTIPROCESS_ITERATIONS, num_envs,
                                        multiprocess_rev)
        elif case == "7":
            results["cases"][case] = fn(args.pairs, first_contact_rev)
        elif case == "8":
            results["cases"][case] = fn(args.pairs, seeds=args.halfcheetah_seeds)
        else:
            results["cases"][case] = fn(args.pairs)
    if not args.no_save:  # the figures first: a report that fails loses nothing measured
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H.%M.%SZ")
        (args.out / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    table = report(results)
    if not args.no_save:
        (args.out / f"{stamp}.md").write_text(table)
        full = (set(results["cases"]) == set(CASES) and args.pairs >= 3 and args.iterations is None and not num_envs
                and baseline_rev is not None and first_contact_rev is not None and multiprocess_rev is not None)
        if full and args.out.resolve() == RESULTS.resolve():  # only a full invocation becomes the quoted table
            (args.out / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
