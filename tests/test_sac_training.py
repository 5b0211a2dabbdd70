"""The compiled SAC loop on a device mesh: two devices, determinism, and that it actually learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlpipe.rl import mesh, run_state, training
from rlpipe.rl.keys import stage_key
from tests.conftest import TINY_SAC
from tests.support import device_data, setup, train


def test_two_devices_keep_identical_params_and_separate_data():
    assert jax.device_count() == 2, "conftest forces two CPU devices"
    sac, cfg, spec, train_batch, _ = setup("sac", TINY_SAC)
    state = sac.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    scenarios = mesh.put_replicated(mesh.host_copy(train_batch))
    run, specs = run_state.initial_state(sac, cfg, spec, scenarios, state, stage_key(cfg.seed, "train"),
                                        device_data("sac", cfg, spec, train_batch))
    before = mesh.host_copy(run.training.actor_params)
    chunk = training.make_chunk(sac, cfg, spec, specs)
    run, metrics = chunk(run, scenarios, jnp.int32(10))

    # the training state is one replicated array per leaf: every device holds the same bits
    for leaf in jax.tree.leaves(run.training):
        assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 2
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        np.testing.assert_array_equal(shards[0], shards[1])
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), before, mesh.host_copy(run.training.actor_params))
    assert max(jax.tree.leaves(moved)) > 0  # and they did train
    assert int(mesh.host_copy(run.training.grad_steps)) == 10 * cfg.train.grad_updates_per_iter
    # the buffer is one global array split over the devices: each device's shard has its own transitions
    obs = run.device.buffer.data.obs
    assert obs.shape == (cfg.buffer.capacity, spec.obs_dim) and len(obs.sharding.device_set) == 2
    shard0, shard1 = (np.asarray(s.data) for s in obs.addressable_shards)
    assert shard0.shape == (cfg.buffer.capacity // 2, spec.obs_dim) and not np.array_equal(shard0, shard1)
    assert int(mesh.host_copy(run.device.buffer.size)) == cfg.buffer.prefill_steps // 2 + 10 * 2
    assert np.isfinite(float(metrics["critic_loss"]))


def test_same_seed_same_bits_different_seed_different_bits():
    a, _ = train("sac", {**TINY_SAC, "seed": 3})
    b, _ = train("sac", {**TINY_SAC, "seed": 3})
    c, _ = train("sac", {**TINY_SAC, "seed": 4})
    for x, y in zip(jax.tree.leaves(mesh.host_copy(a.state)), jax.tree.leaves(mesh.host_copy(b.state))):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.final_evaluation["returns"], b.final_evaluation["returns"])
    kernel = lambda r: mesh.host_copy(r.state["training"].actor_params["params"]["MLP_0"]["Dense_0"]["kernel"])  # noqa: E731
    assert not np.array_equal(kernel(a), kernel(c))


def test_history_counts_steps_and_logs_progress():
    rows, checkpoints = [], []
    result, _ = train("sac", TINY_SAC, evaluate=False, on_progress=rows.append,
                      on_checkpoint=lambda step, tree, progress: checkpoints.append(step))
    history = result.history
    assert [r["env_steps"] for r in history] == [128, 192, 256, 320]  # 64 prefill + chunks of 64
    assert history[-1]["grad_steps"] == (320 - 64) // 4 * 2
    assert len(rows) == len(history) and rows[-1]["total_env_steps"] == 320
    assert checkpoints == [128, 256, 320]  # every 128 env steps, and the end
    for r in history:
        assert np.isfinite(r["critic_loss"]) and r["env_steps_per_s"] > 0


@pytest.mark.slow
def test_sac_learns_to_swing_up_the_pendulum():
    """A real (small) training run: random policy scores about -1200; trained SAC must beat -300."""
    result, _ = train("sac", {"train": {"total_env_steps": 12000}, "scenarios": {"num_eval": 16}})
    returns, lengths = result.final_evaluation["returns"], result.final_evaluation["lengths"]
    assert (lengths == 200).all()
    assert returns.mean() > -300, f"eval mean return {returns.mean():.1f}"
