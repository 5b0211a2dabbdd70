"""A real search with the shipped `sac_tune` config (its trials of `num_seeds` agents at its budget), then the best
config against the default one at the same budget, each trained with the same fresh seeds (--eval-seed and the
next ones, which no trial used) and evaluated on the same held-out scenarios: the IQM of the agents' mean returns
with its 95% bootstrap interval, for both. Runs in a throwaway copy of the project (its own data/ and mlflow.db)."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from common import emit, log  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEDRO = Path(sys.executable).with_name("kedro")


def kedro(project: Path, *args: str) -> str:
    done = subprocess.run([str(KEDRO), "run", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        raise SystemExit(f"kedro run {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout + done.stderr


def latest(project: Path, rel: str) -> Path:
    folder = project / rel
    return folder / sorted(p.name for p in folder.iterdir())[-1] / folder.name


def summary(project: Path) -> dict:
    return json.loads(latest(project, "data/07_model_output/sac/eval_summary.json").read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval-seed", type=int, default=1000, help="first seed of the final comparison's agents")
    parser.add_argument("--n-trials", type=int, default=None, help="default: the shipped config's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlpipe-bench-search-") as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "pyproject.toml", project)
        shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf" / "local").mkdir()
        (project / "src").mkdir()
        search = yaml.safe_load((ROOT / "conf/base/parameters_sac_tune.yml").read_text())["sac_tune"]
        if args.n_trials:
            search["n_trials"] = args.n_trials
            (project / "conf/local/parameters_sac_tune.yml").write_text(yaml.safe_dump({"sac_tune": search}))
        started = time.perf_counter()
        kedro(project, "--pipeline=sac_tune")
        search_seconds = time.perf_counter() - started
        log(f"search: {search['n_trials']} trials in {search_seconds:.0f} s")
        best = yaml.safe_load(latest(project, "data/09_tuning/sac_tune/best_params.yml").read_text())["sac"]
        default = yaml.safe_load((ROOT / "conf/base/parameters_sac.yml").read_text())["sac"]
        budget = search["base"]
        results = {}
        for name, params in (("best", best), ("default", default)):
            params = json.loads(json.dumps(params))  # a copy
            params.setdefault("train", {}).update(budget.get("train", {}))
            params["train"]["num_seeds"] = search["num_seeds"]
            params["seed"] = args.eval_seed
            (project / "conf/local/parameters_sac.yml").write_text(yaml.safe_dump({"sac": params}))
            kedro(project, "--pipeline=sac")
            s = summary(project)
            results[name] = {k.removeprefix("seeds.return_"): s[k] for k in s if k.startswith("seeds.return_")}
            results[name]["params"] = {k: params["train"].get(k) for k in ("learning_rate", "batch_size",
                                                                           "grad_updates_per_iter", "tau", "gamma")}
            results[name]["params"]["hidden_sizes"] = (params.get("network") or {}).get("hidden_sizes")
            log(f"{name}: IQM {results[name]['iqm']:.1f} [{results[name]['iqm_ci_low']:.1f}, "
                f"{results[name]['iqm_ci_high']:.1f}]")
    emit({"peer": "ours", "case": "search", "n_trials": search["n_trials"], "num_seeds": search["num_seeds"],
          "budget_env_steps": budget["train"]["total_env_steps"], "search_seconds": search_seconds,
          "eval_seed": args.eval_seed, **{f"{k}": v for k, v in results.items()},
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
