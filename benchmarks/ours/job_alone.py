"""The default job of an algorithm (its shipped parameters, as ``kedro run --pipelines=<algo>`` trains it) through the
library alone, no Kedro and no MLflow: the floor under the whole job's seconds. Prints one JSON line:

- ``train_seconds``: the compiled training calls only (the training history's own figure), ``eval_seconds`` the
  periodic evaluations;
- ``compile``: JAX's own timings of every program the job builds, summed by stage (tracing, lowering to MLIR, XLA
  compilation, which is a load from the persistent cache when warm), and the largest single ones;
- ``import_seconds`` (jax and rlpipe) and ``process_seconds``.

    .venv/bin/python benchmarks/ours/job_alone.py [--algo sac] [--cache-dir DIR]
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

from common import emit, train_through_library, use_compilation_cache  # noqa: E402

use_compilation_cache(sys.argv)

IMPORTED = time.perf_counter()
# jax._src.dispatch's debug lines, e.g. "Finished XLA compilation of jit(one) in 0.36 sec"
TIMING = re.compile(r"Finished (tracing|jaxpr to MLIR module conversion|XLA compilation of) (\S+).* in ([\d.e-]+) sec")
STAGES = {"tracing": "tracing", "jaxpr to MLIR module conversion": "lowering", "XLA compilation of": "xla"}


class CompileTimings(logging.Handler):
    """Collects JAX's per-program timings (stage, program, seconds) from its dispatch logger."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.rows: list[tuple[str, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = TIMING.search(record.getMessage())
        if found:
            self.rows.append((STAGES[found.group(1)], found.group(2), float(found.group(3))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--cache-dir", help="JAX persistent compilation cache (the project's default behaviour)")
    args = parser.parse_args()
    timings = CompileTimings()
    dispatch = logging.getLogger("jax._src.dispatch")
    dispatch.addHandler(timings)
    dispatch.setLevel(logging.DEBUG)
    dispatch.propagate = False  # the timings are collected, not printed
    _, result, seconds = train_through_library(args.algo, {})
    last = result.history[-1]
    by_stage = {stage: sum(s for st, _, s in timings.rows if st == stage) for stage in STAGES.values()}
    emit({"algo": args.algo, "env_steps": last["env_steps"], "final_eval_return_mean": last["eval_return_mean"],
          "train_seconds": last["train_seconds"],
          "eval_seconds": last["eval_seconds"], "job_seconds": seconds,
          "compile": {**by_stage, "programs": len({p for _, p, _ in timings.rows}),
                      "largest": sorted(timings.rows, key=lambda row: -row[2])[:6]},
          "import_seconds": IMPORTED - STARTED, "process_seconds": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
