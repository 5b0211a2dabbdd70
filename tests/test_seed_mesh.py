"""Seeds spread over the devices of every process (``train.seeds_per_device``): each seed alone on its device
trains bitwise as its own one-seed run on one device, and the same whether its device is in this process or in
another one; a layout that does not divide the devices is a config error before anything compiles.

The per-seed fingerprints come from one helper, ``seed_digests``, run here (2 forced devices), in a one-device
interpreter and in both processes of a 2-process launch, so every comparison is of the same bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl.errors import ConfigError
from tests.conftest import TINY_SAC

ROOT = Path(__file__).resolve().parents[1]
# one iteration of 4 envs per chunk-line and two evaluations: enough to diverge if any bit of a seed differed
SEEDS = {**TINY_SAC, "seed": 3, "scenarios": {**TINY_SAC["scenarios"], "seed": 11},
         "train": {**TINY_SAC["train"], "total_env_steps": 192, "checkpoint_every_env_steps": 192,
                   "eval_every_env_steps": 128}}


def seed_digests(raw: dict) -> list[dict[str, object]]:
    """Train ``raw`` through the run's spine; per seed (one entry for a one-seed run): a sha256 of its final
    training state and key, and its final evaluation returns."""
    import numpy as np

    from rlpipe.rl import mesh
    from tests import reference_bits, support

    result, config = support.train("sac", raw)
    state = mesh.host_copy({"training": result.state["training"], "key": result.state["key"]})
    returns = np.asarray(result.final_evaluation["returns"])
    if config.train.num_seeds == 1:
        return [{"state": reference_bits.state_digest(state), "returns": returns.tolist()}]
    return [{"state": reference_bits.state_digest({k: _seed(v, i) for k, v in state.items()}),
             "returns": returns[i].tolist()} for i in range(config.train.num_seeds)]


def _seed(tree, i: int):
    import jax

    return jax.tree.map(lambda x: x[i], tree)


def _main() -> None:
    """``python -m tests.test_seed_mesh RAW_JSON...``: each config's ``seed_digests`` as one JSON line (process 0)."""
    import tests.conftest  # noqa: F401  (the persistent compilation cache)
    from rlpipe.rl import mesh

    mesh.initialize()
    out = [seed_digests(json.loads(raw)) for raw in sys.argv[1:]]
    if mesh.is_primary():
        print("DIGESTS " + json.dumps(out), flush=True)


def _digests_from(output: str) -> list:
    lines = [line for line in output.splitlines() if "DIGESTS " in line]
    assert len(lines) == 1, output[-4000:]
    return json.loads(lines[0].split("DIGESTS ", 1)[1])


def _run(command: list[str], devices: int) -> str:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


# the tests that compare with spread_here run on one test worker: the fixture trains once, not once per worker
SPREAD_HERE = pytest.mark.xdist_group("seed_mesh_spread_here")


@pytest.fixture(scope="module")
def spread_here():
    """Seeds 3 and 4 one per device in this process (2 devices)."""
    return seed_digests({**SEEDS, "train": {**SEEDS["train"], "num_seeds": 2, "seeds_per_device": 1}})


@SPREAD_HERE
@pytest.mark.slow
def test_each_seed_alone_on_a_device_trains_as_its_own_one_seed_run_on_one_device(spread_here):
    one_device = _digests_from(_run([sys.executable, "-m", "tests.test_seed_mesh",
                                     json.dumps({**SEEDS, "seed": 3}), json.dumps({**SEEDS, "seed": 4})], devices=1))
    assert [d[0] for d in one_device] == spread_here
    assert spread_here[0]["state"] != spread_here[1]["state"]  # two seeds, not one twice


@SPREAD_HERE
@pytest.mark.slow
def test_seeds_spread_over_two_processes_train_as_in_one_process(spread_here):
    """2 processes x 1 device choose the spread layout themselves (seeds_per_device: null) and no collective
    crosses seeds: each seed's bits are those of the same seeds spread over this process's 2 devices, also with each
    process pinned to its own CPU (``--pin-cpus``: fewer threads per process than here)."""
    launch = [sys.executable, "-m", "rlpipe.launch", "--processes", "2", "--devices-per-process", "1", "--pin-cpus",
              "--grace", "60", "--", sys.executable, "-m", "tests.test_seed_mesh",
              json.dumps({**SEEDS, "train": {**SEEDS["train"], "num_seeds": 2}})]
    # the bits of one device per seed: data-parallel seeds (each over both processes) would have other bits
    assert _digests_from(_run(launch, devices=1)) == [spread_here]


@pytest.mark.slow
def test_seeds_spread_over_the_devices_resume_bitwise_with_their_curriculum():
    """A checkpoint of a run whose seeds are one per device (each with its own curriculum weights) resumes to the
    bits of the uninterrupted run."""
    import jax
    import numpy as np
    from flax import serialization

    from rlpipe.rl import loop, mesh, run
    from rlpipe.rl.seeds import Seeds

    raw = {**SEEDS, "scenarios": {**SEEDS["scenarios"], "ranges": {"m": [0.5, 2.0]},
                                  "curriculum": {"every_env_steps": 64, "temperature": 0.5}},
           "train": {**SEEDS["train"], "num_seeds": 2, "seeds_per_device": 1, "checkpoint_every_env_steps": 128,
                     "eval_every_env_steps": 0}}
    config = run.validated_config("sac", raw)
    assert Seeds.of(config).groups == 2
    saved = []

    def keep(env_steps, tree, progress):
        as_stored = {part: serialization.to_state_dict(value) for part, value in mesh.host_copy(tree).items()}
        saved.append((env_steps, as_stored, {**progress, "history": list(progress["history"])}))

    whole = run.train_in_memory(config, evaluate=False, on_checkpoint=keep)
    env_steps, tree, progress = saved[0]
    assert env_steps < config.train.total_env_steps
    resume = loop.Resume(tree, Seeds.of(config).data_devices, progress["iteration"], env_steps, progress["history"],
                         progress["stopper"], list(progress["curve"]), list(progress["episodes"]))
    resumed = run.train_in_memory(config, evaluate=False, resume=resume)
    a, b = mesh.host_copy(whole.state), mesh.host_copy(resumed.state)
    assert jax.tree.structure(a) == jax.tree.structure(b) and "curriculum" in a
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a["training"].log_alpha[0]), np.asarray(a["training"].log_alpha[1]))


@pytest.mark.parametrize("num_seeds,per_device,why", [
    (3, 1, "3 groups of devices, which do not divide the 2 device(s)"),
    (4, 3, "must be a multiple of seeds_per_device"),
])
def test_a_seed_layout_that_does_not_fit_the_devices_is_a_config_error(num_seeds, per_device, why):
    raw = {**SEEDS, "train": {**SEEDS["train"], "num_seeds": num_seeds, "seeds_per_device": per_device}}
    with pytest.raises(ConfigError) as caught:
        algorithms.load_config("sac", raw, 2)
    message = str(caught.value)
    assert "sac.train.seeds_per_device" in message and why in message
    assert f"sac.train.num_seeds: {num_seeds}" in message and "2 device(s)" in message


def test_the_default_layout_keeps_every_seed_over_every_device_in_one_process():
    """One process: seeds_per_device null is the layout of earlier runs (its bits are the reference's); a layout
    that fits sets how many devices split each seed's data."""
    from rlpipe.rl import mesh

    assert mesh.seed_groups(2, None, 2, 1) == 1
    assert mesh.seed_groups(2, None, 2, 2) == 2 and mesh.seed_groups(4, None, 2, 2) == 2
    assert mesh.seed_groups(3, None, 4, 2) == 1 and mesh.seed_groups(6, None, 4, 2) == 2
    assert mesh.seed_groups(4, 2, 4, 1) == 2


if __name__ == "__main__":
    _main()
