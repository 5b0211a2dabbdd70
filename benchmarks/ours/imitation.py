"""The imitation chain as a user runs it, in a scratch copy of the project (its conf/, fresh data/ and mlflow.db):
`kedro run --pipeline=imitation_chain` (the default SAC expert, 64 recorded episodes, ppo_imitation with task_weight
0 from the shipped parameters_ppo_imitation.yml), then `kedro run --pipeline=ppo_imitation` with seeds 1 ..
``--seeds - 1`` on the same demonstrations. Prints each run's wall seconds and the eval summaries (the expert's, the
demonstrations' mean return, each imitator's mean on its 64 held-out scenarios)."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit

ROOT = Path(__file__).resolve().parents[2]
KEDRO = Path(sys.executable).with_name("kedro")


def kedro(project: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(KEDRO), "run", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode:
        raise SystemExit(f"kedro run {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return time.perf_counter() - started


def newest_json(project: Path, rel: str) -> dict:
    folder = project / rel
    return json.loads((sorted(folder.iterdir())[-1] / folder.name).read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlpipe-imitation-") as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "pyproject.toml", project)
        shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf" / "local").mkdir()
        (project / "src").mkdir()
        chain_seconds = kedro(project, "--pipeline=imitation_chain")
        expert = newest_json(project, "data/07_model_output/sac/eval_summary.json")
        imitators = [newest_json(project, "data/07_model_output/ppo_imitation/eval_summary.json")["return_mean"]]
        seconds = []
        for seed in range(1, args.seeds):
            seconds.append(kedro(project, "--pipeline=ppo_imitation", "--params", f"ppo_imitation.seed={seed}"))
            imitators.append(newest_json(project, "data/07_model_output/ppo_imitation/eval_summary.json")["return_mean"])
        import pyarrow.parquet as pq

        demos = sorted((project / "data/03_primary/demonstrations.parquet").iterdir())[-1]
        meta = json.loads(pq.read_schema(demos / "demonstrations.parquet").metadata[b"rlpipe"])
    emit({"peer": "ours", "case": "imitation", "chain_seconds": chain_seconds, "imitator_seconds": seconds,
          "expert_eval_mean": expert["return_mean"], "demonstrations_return_mean": meta["return_mean"],
          "demonstrations": meta["transitions"], "imitator_eval_mean": imitators,
          "imitator_seeds": list(range(args.seeds))})


if __name__ == "__main__":
    main()
