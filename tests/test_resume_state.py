"""Every piece of an algorithm's run state resumes exactly: a recurrent policy's hidden states mid-episode, two
seeds' scenario curriculum, multi-agent SAC's joint env states, attention critics and buffer. Each run is in this
process through the run's spine (``rlpipe.rl.run.train``): the interruption is an exception raised once the second
periodic checkpoint is on disk, as a crash between two checkpoints leaves a run; the resumed run then loads its
state from that checkpoint on disk. A process really killed with SIGKILL (torn files, a damaged newest checkpoint)
is ``test_resilience``'s SAC case, through ``kedro run``."""

from __future__ import annotations

import copy
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from flax import serialization

from rlpipe.rl import mesh, run, run_state
from rlpipe.rl.checkpoint import load_checkpoint
from rlpipe.rl.chunk import checkpoint_tree
from rlpipe.rl.keys import stage_key
from rlpipe.rl.loop import Resume
from tests import support
from tests.test_resilience import KILL_MASAC, KILL_PPO, KILL_SAC, KILL_SAC_SEEDS, assert_bitwise_equal


class Interrupted(Exception):
    """Stands for the crash of a run between two checkpoints."""


def checkpoints(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("step_*") if (p / "meta.json").exists())


def interrupt_after_checkpoints(root: Path, count: int):
    """A progress callback that crashes the run at its first progress line after ``count`` checkpoints exist."""
    def on_progress(row):
        if len(checkpoints(root)) >= count:
            raise Interrupted(f"interrupted at {row['env_steps']} env steps")
    return on_progress


@pytest.mark.parametrize("algo,params", [("ppo", KILL_PPO), ("sac", KILL_SAC_SEEDS), ("masac", KILL_MASAC)],
                         ids=["ppo-recurrent", "sac-2-seeds-curriculum", "masac"])
@pytest.mark.slow
def test_an_interrupted_run_resumes_bitwise_as_the_uninterrupted_one(tmp_path, algo, params):
    raw = copy.deepcopy(params)
    interrupted_root, reference_root = tmp_path / "interrupted", tmp_path / "reference"
    with pytest.raises(Interrupted):
        run.train(run.validated_config(algo, raw), root=interrupted_root,
                  on_progress=interrupt_after_checkpoints(interrupted_root, 2))
    taken = checkpoints(interrupted_root)
    assert len(taken) == 2
    if algo == "ppo":  # the checkpoint holds every env's policy state, mid-episode
        saved, _ = load_checkpoint(taken[-1], ["device"])
        assert saved["device"]["memory"].shape == (4, 32) and np.abs(saved["device"]["memory"]).sum() > 0
    if "curriculum" in raw["scenarios"]:  # re-weighted before the checkpoints: not uniform any more
        saved, _ = load_checkpoint(taken[-1], ["curriculum"])
        assert saved["curriculum"]["weights"].shape == (2, 8) and np.ptp(saved["curriculum"]["weights"][0]) > 0

    resumed_rows: list[int] = []
    resumed = run.train(run.validated_config(algo, {**raw, "train": {**raw["train"], "resume": True}}),
                        root=interrupted_root, on_progress=lambda row: resumed_rows.append(row["env_steps"]))
    fresh_rows: list[int] = []
    fresh = run.train(run.validated_config(algo, raw), root=reference_root,
                      on_progress=lambda row: fresh_rows.append(row["env_steps"]))

    # the resumed run started at the checkpoint's step, not from 0: it ran exactly the chunks the uninterrupted run
    # ran after that step (a resume that ignored the checkpoint would retrain from the start, bitwise the same)
    start = int(taken[-1].name.removeprefix("step_"))
    assert resumed_rows and resumed_rows[0] > start, (start, resumed_rows)
    assert resumed_rows == [s for s in fresh_rows if s > start], (start, resumed_rows, fresh_rows)
    assert resumed.trained.agent.path.parent == taken[-1].parent  # it continued the interrupted run's folder
    state_r, meta_r = load_checkpoint(resumed.trained.agent.path)
    state_f, meta_f = load_checkpoint(fresh.trained.agent.path)
    assert_bitwise_equal(state_r, state_f)
    assert meta_r["env_steps"] == meta_f["env_steps"] == raw["train"]["total_env_steps"]
    assert resumed.eval_summary == fresh.eval_summary
    history_r, history_f = resumed.trained.history, fresh.trained.history
    assert list(history_r["env_steps"]) == list(history_f["env_steps"])  # the full history, interruption included
    timing = [c for c in history_f.columns if c.endswith(("_per_s", "_seconds"))]
    pd.testing.assert_frame_equal(history_r.drop(columns=timing).reset_index(drop=True),
                                  history_f.drop(columns=timing).reset_index(drop=True))


@pytest.mark.parametrize("algo,params", [("sac", KILL_SAC), ("ppo", KILL_PPO)], ids=["sac", "ppo-recurrent"])
def test_a_restored_run_state_has_the_fresh_states_values_and_types_weak_ones_included(algo, params):
    """A JAX env's reset makes some of its state weakly typed (Pendulum's ``time = 0`` and ``last_u``); a checkpoint
    holds plain numpy arrays. Restored with the fresh state's types and layout, the resumed run is the fresh run's
    compiled program (a cache hit), not one compiled again for a signature that differs only there."""
    algorithm, cfg, spec, train_batch, _ = support.setup(algo, params)
    training, _ = run.initial_state(cfg)
    scenarios = mesh.put_replicated(mesh.host_copy(train_batch), 1)
    data = support.device_data(algo, cfg, spec, train_batch)
    fresh, _ = run_state.initial_state(algorithm, cfg, spec, scenarios, training, stage_key(cfg.seed, "train"), data)
    assert any(x.weak_type for x in jax.tree.leaves(fresh))  # what this test is about is there
    as_loaded = serialization.to_state_dict(mesh.host_copy(checkpoint_tree(fresh)))  # numpy, as a checkpoint holds
    resume = Resume(tree=as_loaded, num_devices=mesh.device_count(), iteration=0, env_steps=0, history=[],
                    stopper=None)
    restored, _ = run_state.initial_state(algorithm, cfg, spec, scenarios, training, stage_key(cfg.seed, "train"),
                                          data, resume)
    assert [jax.typeof(x) for x in jax.tree.leaves(restored)] == [jax.typeof(x) for x in jax.tree.leaves(fresh)]
    assert [x.sharding for x in jax.tree.leaves(restored)] == [x.sharding for x in jax.tree.leaves(fresh)]
    assert_bitwise_equal(mesh.host_copy(checkpoint_tree(restored)), mesh.host_copy(checkpoint_tree(fresh)))
