"""Fingerprints of tiny training runs, to prove a refactor of the training core changed no bit.

``tests/data/one_seed_reference.json`` holds one entry per machine kind: the bits depend on the jax version, the
device count and the CPU's vector instructions (XLA's code and kernels are chosen for the host CPU: the same code
gave other float bits on a CPU with AVX2 only than on one with AVX-512; ``--xla_cpu_max_isa=AVX2`` on the AVX-512
machine keeps that machine's bits, so the flag does not stand in for the other kind; an AMD EPYC and an Intel Xeon
with AVX-512 gave the same bits, each entry computed on its own machine; the file holds an AMD EPYC with AVX-512, an
Intel Xeon with AVX-512 and AMX, and an AMD EPYC with AVX2 only), and each run records the commit whose code wrote it. The test in ``tests/test_seeds.py`` runs the same trainings with today's code and
compares them exactly with the entry of the machine it runs on (it skips, saying so, where the file has none).

Each run's bits come from the code before the change it guards: the 2-seed run (no gradient collective, one seed per
device) from the code before the seeds refactor (f223cab), the one-seed runs on 2 devices from the commit where the
mesh's all-reduces became one flat buffer per dtype (3ed03dd, same sums, other fusions around them). To add a
machine, run this module in a worktree of each of those commits (``python -m tests.reference_bits [NAMES]`` with
that worktree's ``src`` first on ``PYTHONPATH``) and copy its runs into a new entry; a change that means to change
some runs' bits rewrites those alone on this machine: ``python -m tests.reference_bits sac_1_seed``.

A fingerprint is a sha256 over every leaf of the final run state (path, dtype, shape, bytes), one over the history
and curve (every column except wall-clock timings, each value's exact ``repr``), and the final evaluation's
per-scenario returns (floats, exact). Only ``tests/support.py``'s setup and ``rlpipe.rl.training.train`` are used
(no Kedro, no stage module): what they take and return is what the refactor must keep.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REFERENCE = Path(__file__).resolve().parent / "data" / "one_seed_reference.json"
TIMING_COLUMNS = frozenset({"train_seconds", "eval_seconds", "env_steps_per_s", "grad_steps_per_s"})


def _tiny_configs() -> dict[str, tuple[str, dict]]:
    from tests.conftest import TINY_SAC
    from tests.test_ppo import TINY_PPO

    return {
        "sac_1_seed": ("sac", TINY_SAC),
        "ppo_1_seed": ("ppo", TINY_PPO),
        "sac_2_seeds": ("sac", {**TINY_SAC, "train": {**TINY_SAC["train"], "num_seeds": 2}}),
    }


def state_digest(tree: Any) -> str:
    """sha256 over every leaf of ``tree``: its path, dtype, shape and bytes (global arrays read back whole)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        value = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def rows_digest(rows: list[dict[str, Any]]) -> str:
    """sha256 over the rows' columns (but wall-clock timings), sorted by name, each value's exact ``repr``."""
    canonical = [[(k, repr(float(v))) for k, v in sorted(row.items()) if k not in TIMING_COLUMNS] for row in rows]
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def _train(algo: str, raw: dict):
    """A whole run through the library, keyed as the pipeline keys it: every seed k of a multi-seed run initialized,
    prefilled and keyed exactly as a one-seed run with seed + k (stacked along a leading seed axis)."""
    from rlpipe.rl import training
    from rlpipe.rl.keys import stage_key
    from tests.support import setup

    plugin, cfg, spec, train_batch, eval_batch = setup(algo, raw)
    seeds = [cfg.seed + k for k in range(cfg.train.num_seeds)]
    make_data = plugin.initial_device_data  # SAC's random prefill; None for PPO

    def per_seed(make):
        trees = [make(seed) for seed in seeds]
        return trees[0] if len(trees) == 1 else jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                                                             *trees)

    state = per_seed(lambda seed: plugin.init_training_state(cfg, spec, stage_key(seed, "init")))
    data = per_seed(lambda seed: make_data(cfg, spec, train_batch, seed))
    key = stage_key(seeds[0], "train") if len(seeds) == 1 else jnp.stack([stage_key(s, "train") for s in seeds])
    return training.train(plugin, cfg, spec, train_batch, state, key, device_data=data, eval_scenarios=eval_batch)


def fingerprint(algo: str, raw: dict) -> dict[str, Any]:
    """The fingerprint of one tiny run (see the module docstring)."""
    result = _train(algo, raw)
    returns = np.asarray(result.final_evaluation["returns"], np.float64)
    return {"state_sha256": state_digest(result.state), "history_sha256": rows_digest(result.history),
            "curve_sha256": rows_digest(result.curve), "eval_returns": returns.tolist()}


def cpu_features() -> list[str]:
    """The host CPU's vector-instruction flags (Linux's /proc/cpuinfo: avx*, amx*, fma, f16c); elsewhere the
    machine name."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return [platform.machine()]
    return sorted(f for f in flags.split(":", 1)[1].split() if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))


def environment() -> dict[str, Any]:
    """What the bits depend on besides the code: the jax version, the device count and the CPU's vector units."""
    return {"jax": jax.__version__, "device_count": jax.device_count(), "cpu_features": cpu_features()}


def _machines() -> list[dict[str, Any]]:
    return json.loads(REFERENCE.read_text())["machines"] if REFERENCE.exists() else []


def _same_kind(machine: dict[str, Any], here: dict[str, Any]) -> bool:
    return all(machine.get(key) == value for key, value in here.items())


def stored_runs(here: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The stored runs of the entry written on a machine like ``here``, None if the file has no such entry."""
    return next((m["runs"] for m in _machines() if _same_kind(m, here)), None)


def compute(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    configs = _tiny_configs()
    return {name: fingerprint(*configs[name]) for name in (names or list(configs))}


def main(names: list[str]) -> None:
    """Writes the fingerprints of ``names`` (all runs if none) with this commit into this machine's entry, keeping
    its other runs and the other machines' entries."""
    import tests.conftest  # noqa: F401  (two forced CPU devices and the compilation cache, as in the tests)

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    here = environment()
    if names and stored_runs(here) is None:
        raise SystemExit(f"{REFERENCE} has no entry for this kind of machine ({here}): write every run, not some")
    others = [m for m in _machines() if not _same_kind(m, here)]
    written = {name: {**fp, "commit": commit} for name, fp in compute(names or None).items()}
    runs = {**(stored_runs(here) or {}), **written}
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps({"machines": [*others, {**here, "runs": runs}]}, indent=1) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
