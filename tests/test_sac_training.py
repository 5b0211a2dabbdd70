"""The compiled SAC loop: pmap over two devices, determinism, and that it actually learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import TINY_SAC
from rlpipe.rl import parallel
from rlpipe.rl.config import load_sac_config
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.sac import train as sac


def setup(raw, num_devices):
    cfg = load_sac_config(raw, num_devices)
    spec = make_env(cfg.env.id)
    s = cfg.scenarios
    train_table, eval_table = generate_scenarios(spec, s.ranges, s.num_train, s.num_eval, cfg.seed)
    return cfg, spec, scenarios_to_batch(train_table, spec, "train"), scenarios_to_batch(eval_table, spec, "eval")


def test_two_devices_keep_identical_params_and_separate_data():
    assert jax.local_device_count() == 2, "conftest forces two CPU devices"
    cfg, spec, train_batch, _ = setup(TINY_SAC, 2)
    state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
    prefill = sac.collect_random(cfg, spec, train_batch, sac.stage_key(cfg.seed, "prefill"))
    run = sac.initial_run_state(cfg, spec, train_batch, state, prefill, sac.stage_key(cfg.seed, "train"), 2)
    before = jax.device_get(run.training.actor_params)
    chunk = sac.make_train_chunk(cfg, spec, 2)
    run, metrics = chunk(run, train_batch, jnp.int32(10))
    training = jax.device_get(run.training)

    assert len(run.device.key.sharding.device_set) == 2  # really spread over both devices
    for leaf in jax.tree.leaves(training):
        np.testing.assert_array_equal(leaf[0], leaf[1])  # bitwise identical on both devices
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), before, training.actor_params)
    assert max(jax.tree.leaves(moved)) > 0  # and they did train
    assert int(training.grad_steps[0]) == 10 * cfg.train.grad_updates_per_iter
    buffers = jax.device_get(run.device.buffer.data.obs)
    assert not np.array_equal(buffers[0], buffers[1])  # each device has its own envs and shard
    assert (np.asarray(run.device.buffer.size) == (cfg.buffer.prefill_steps // 2 + 10 * 2)).all()
    np.testing.assert_array_equal(metrics["critic_loss"][0], metrics["critic_loss"][1])  # pmean'd metrics


def test_same_seed_same_bits_different_seed_different_bits():
    def once(seed):
        raw = {**TINY_SAC, "seed": seed}
        cfg, spec, train_batch, eval_batch = setup(raw, 2)
        state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
        prefill = sac.collect_random(cfg, spec, train_batch, sac.stage_key(cfg.seed, "prefill"))
        final, history = sac.train(cfg, spec, train_batch, state, prefill, sac.stage_key(cfg.seed, "train"))
        returns, _ = sac.evaluate_policy(cfg, spec, eval_batch, final["training"].actor_params, 200)
        return jax.device_get(final), returns

    a, ra = once(3)
    b, rb = once(3)
    c, _ = once(4)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(ra, rb)
    assert not np.array_equal(a["training"].actor_params["params"]["MLP_0"]["Dense_0"]["kernel"],
                              c["training"].actor_params["params"]["MLP_0"]["Dense_0"]["kernel"])


def test_history_counts_steps_and_logs_progress():
    cfg, spec, train_batch, _ = setup(TINY_SAC, 2)
    rows = []
    checkpoints = []
    state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
    prefill = sac.collect_random(cfg, spec, train_batch, sac.stage_key(cfg.seed, "prefill"))
    _, history = sac.train(cfg, spec, train_batch, state, prefill, sac.stage_key(cfg.seed, "train"),
                           on_progress=rows.append, on_checkpoint=lambda step, tree, progress: checkpoints.append(step))
    assert [r["env_steps"] for r in history] == [128, 192, 256, 320]  # 64 prefill + chunks of 64
    assert history[-1]["grad_steps"] == (320 - 64) // 4 * 2
    assert len(rows) == len(history) and rows[-1]["total_env_steps"] == 320
    assert checkpoints == [128, 256, 320]  # every 128 env steps, and the end
    for r in history:
        assert np.isfinite(r["critic_loss"]) and r["env_steps_per_s"] > 0


@pytest.mark.slow
def test_sac_learns_to_swing_up_the_pendulum():
    """A real (small) training run: random policy scores about -1200; trained SAC must beat -300."""
    raw = {"train": {"total_env_steps": 12000}, "scenarios": {"num_eval": 16}}
    cfg, spec, train_batch, eval_batch = setup(raw, 2)
    state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
    prefill = sac.collect_random(cfg, spec, train_batch, sac.stage_key(cfg.seed, "prefill"))
    final, _ = sac.train(cfg, spec, train_batch, state, prefill, sac.stage_key(cfg.seed, "train"))
    returns, lengths = sac.evaluate_policy(cfg, spec, eval_batch, final["training"].actor_params, 200)
    assert (lengths == 200).all()
    assert returns.mean() > -300, f"eval mean return {returns.mean():.1f}"


def test_parallel_helpers_round_trip():
    tree = {"a": jnp.arange(6.0).reshape(3, 2)}
    rep = parallel.replicate(tree, 2)
    assert rep["a"].shape == (2, 3, 2)
    np.testing.assert_array_equal(parallel.unreplicate(rep)["a"], tree["a"])
    assert parallel.shard({"x": jnp.arange(8)}, 2)["x"].shape == (2, 4)
