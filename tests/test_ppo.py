"""PPO: losses against hand-computed values, distributions against references, the normalizer against numpy,
early stopping, two-device training and learning CartPole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from rlpipe.rl import mesh, normalization, run_state, training
from rlpipe.rl.early_stopping import EarlyStopping
from rlpipe.rl.keys import stage_key
from rlpipe.rl.ppo import networks as nets
from rlpipe.rl.ppo.losses import clipped_surrogate, explained_variance, gae, value_loss
from tests.support import setup, train

TINY_PPO = {
    "seed": 5,
    "scenarios": {"num_train": 8, "num_eval": 4},
    "network": {"hidden_sizes": [16, 16]},
    "train": {"total_env_steps": 1024, "num_envs": 4, "num_steps": 16, "update_epochs": 2, "num_minibatches": 2,
              "log_every_env_steps": 256, "eval_every_env_steps": 512, "checkpoint_every_env_steps": 512},
    "early_stopping": {"target_return": None},
}


def test_gae_by_hand_with_a_termination_and_a_truncation():
    # one env, 4 steps: step 1 terminates (no bootstrap), step 2 is truncated (bootstrap from its final obs),
    # step 3 runs on past the end of the rollout (bootstrap from the next obs)
    reward = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    value = jnp.array([[10.0], [20.0], [30.0], [40.0]])
    next_value = jnp.array([[20.0], [99.0], [7.0], [50.0]])  # V(s') of each step's true next observation
    discount = jnp.array([[1.0], [0.0], [1.0], [1.0]])  # 0 only where terminated
    done = jnp.array([[0.0], [1.0], [1.0], [0.0]])  # terminated or truncated
    gamma, lam = 0.5, 0.8
    # deltas: d0 = 1 + .5*20 - 10 = 1 ; d1 = 2 + 0 - 20 = -18 ; d2 = 3 + .5*7 - 30 = -23.5 ; d3 = 4 + .5*50 - 40 = -11
    # A3 = -11 ; A2 = d2 (done: nothing flows back) = -23.5 ; A1 = d1 = -18 ; A0 = d0 + .5*.8*A1 = 1 - 7.2 = -6.2
    advantage, target = gae(reward, value, next_value, discount, done, gamma, lam)
    np.testing.assert_allclose(advantage[:, 0], [-6.2, -18.0, -23.5, -11.0], rtol=1e-6)
    np.testing.assert_allclose(target[:, 0], [3.8, 2.0, 6.5, 29.0], rtol=1e-6)


def test_clipped_surrogate_by_hand():
    old = jnp.log(jnp.array([0.5, 0.5, 0.5]))
    new = jnp.log(jnp.array([0.75, 0.25, 0.55]))  # ratios 1.5, 0.5, 1.1
    adv = jnp.array([2.0, 1.0, -1.0])
    # min(1.5*2, 1.2*2) = 2.4 ; min(0.5*1, 0.8*1) = 0.5 ; min(1.1*-1, 1.1*-1) = -1.1 ; loss = -mean = -0.6
    loss, approx_kl, clip_fraction = clipped_surrogate(new, old, adv, 0.2)
    assert float(loss) == pytest.approx(-0.6, rel=1e-5)
    assert float(clip_fraction) == pytest.approx(2 / 3)
    r = np.array([1.5, 0.5, 1.1])
    assert float(approx_kl) == pytest.approx(np.mean((r - 1) - np.log(r)), rel=1e-5)


def test_value_loss_clipped_and_not():
    value, old, target = jnp.array([3.0, 0.0]), jnp.array([1.0, 0.5]), jnp.array([2.0, 1.0])
    assert float(value_loss(value, old, target, None)) == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    # clipped: 1 + clip(2, -.5, .5) = 1.5 -> (1.5-2)^2 = .25 vs 1 -> 1 ; 0.5 + clip(-.5) = 0 -> 1 vs 1 -> 1
    assert float(value_loss(value, old, target, 0.5)) == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    value = jnp.array([1.2, 0.0])  # now the clipped one is worse for sample 0: max picks it
    # s0: unclipped (1.2-2)^2=.64 ; clipped 1+.2=1.2 -> .64 ; s1: unclipped 1 ; clipped 0.5-0.5=0 -> 1
    assert float(value_loss(value, old, target, 0.5)) == pytest.approx(0.5 * (0.64 + 1.0) / 2, rel=1e-5)


def test_explained_variance():
    target = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(explained_variance(target, target)) == pytest.approx(1.0)
    assert float(explained_variance(jnp.full(4, 2.5), target)) == pytest.approx(0.0)


def test_categorical_log_prob_and_entropy_against_numpy():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    p = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum(-1, keepdims=True)
    lp = nets.log_prob(False, logits, jnp.zeros(3), jnp.array([1, 2]))
    np.testing.assert_allclose(lp, np.log([p[0, 1], p[1, 2]]), rtol=1e-6)
    np.testing.assert_allclose(nets.entropy(False, logits, jnp.zeros(3)), -(p * np.log(p)).sum(-1), rtol=1e-6)


def test_gaussian_log_prob_and_entropy_against_scipy():
    mean, log_std = jnp.array([[0.3, -1.0]]), jnp.array([-0.5, 0.2])
    action = jnp.array([[0.1, 0.4]])
    ref = norm.logpdf([0.1, 0.4], loc=[0.3, -1.0], scale=np.exp([-0.5, 0.2])).sum()
    assert float(nets.log_prob(True, mean, log_std, action)[0]) == pytest.approx(ref, rel=1e-5)
    ref_entropy = norm.entropy(scale=np.exp([-0.5, 0.2])).sum()
    assert float(nets.entropy(True, mean, log_std)[0]) == pytest.approx(ref_entropy, rel=1e-5)


def test_normalizer_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32) for _ in range(5)]
    stats = normalization.RunningStats.init(4)
    for b in batches:
        stats = normalization.update(stats, jnp.asarray(b))
    data = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-3)


def test_normalizer_synchronized_across_two_devices():
    rng = np.random.default_rng(1)
    shards = rng.normal(-1.0, 0.5, size=(2, 30, 3)).astype(np.float32)  # each device sees its own half

    def step(x):
        stats = normalization.update(normalization.RunningStats.init(3), x[0], mesh.AXIS)
        return jax.tree.map(lambda leaf: leaf[None], stats)  # each device's result, side by side

    per_device = jax.shard_map(step, mesh=mesh.make_mesh(), in_specs=mesh.sharded_spec(),
                               out_specs=mesh.sharded_spec())(jnp.asarray(shards))
    data = shards.reshape(-1, 3)
    np.testing.assert_array_equal(per_device.mean[0], per_device.mean[1])  # the same on both devices
    np.testing.assert_allclose(per_device.mean[0], data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(per_device.var[0], data.var(0), rtol=1e-3)


def rows(values, key="eval_return_mean"):
    return [{"env_steps": 100 * (i + 1), "eval_return_mean": float("nan"), "episode_return": float("nan"), key: v}
            for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "stopper,values,stops_at",
    [
        (EarlyStopping(475.0, "eval", window=1, patience=1), [100, 480, 490], 200),
        (EarlyStopping(475.0, "eval", window=1, patience=2), [480, 300, 480, 490], 400),  # a dip resets patience
        (EarlyStopping(475.0, "eval", window=2, patience=1), [500, 440, 480, 480], 400),  # mean(500,440) = 470 < 475
        (EarlyStopping(475.0, "eval", window=1, patience=1), [100, float("nan"), 200], None),  # never reached
        (EarlyStopping(None, "eval"), [500, 500, 500], None),  # no target: never stops
    ],
)
def test_early_stopping(stopper, values, stops_at):
    stopped, seen = None, []
    for row in rows(values):
        seen.append(row["eval_return_mean"])
        if stopper.update(row):
            stopped = row["env_steps"]
            break
    assert stopped == stops_at
    finite = [v for v in seen if v == v]
    windowed = [np.mean(finite[max(0, i + 1 - stopper.window):i + 1]) for i in range(len(finite))]
    assert stopper.best == pytest.approx(max(windowed))  # the best windowed return is recorded


def test_early_stopping_on_training_returns_ignores_eval():
    stopper = EarlyStopping(10.0, "train", window=1, patience=1)
    assert not stopper.update({"env_steps": 1, "eval_return_mean": 50.0, "episode_return": 5.0})
    assert stopper.update({"env_steps": 2, "eval_return_mean": float("nan"), "episode_return": 12.0})


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_two_devices_keep_identical_params(env_id):
    raw = {**TINY_PPO, "env": {"id": env_id}, "train": {**TINY_PPO["train"], "normalize_observations": True}}
    ppo, cfg, spec, train_batch, _ = setup("ppo", raw)
    state = ppo.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    scenarios = mesh.put_replicated(mesh.host_copy(train_batch))
    run, specs = run_state.initial_state(ppo, cfg, spec, scenarios, state, stage_key(cfg.seed, "train"))
    run, metrics = training.make_chunk(ppo, cfg, spec, specs)(run, scenarios, jnp.int32(3))
    for leaf in jax.tree.leaves(run.training):  # replicated, and the same bits on both devices
        assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 2
        first, second = (np.asarray(s.data) for s in leaf.addressable_shards)
        np.testing.assert_array_equal(first, second)
    trained = mesh.host_copy(run.training)
    assert int(trained.grad_steps) == 3 * 2 * 2
    assert float(trained.obs_norm.count) == pytest.approx(3 * 4 * 16, rel=1e-3)  # both devices' rollouts
    assert np.isfinite(float(metrics["policy_loss"])) and np.shape(metrics["explained_variance"]) == ()


def test_early_stop_still_evaluates_and_checkpoints():
    raw = {**TINY_PPO, "early_stopping": {"target_return": 0.0, "patience": 1}}  # any CartPole return beats 0
    checkpoints = []
    result, _ = train("ppo", raw, on_checkpoint=lambda step, tree, progress: checkpoints.append(step))
    history = result.history
    assert history[-1]["env_steps"] == 512 and history[-1]["early_stopped"] == 1.0  # first evaluation
    assert checkpoints[-1] == 512
    assert history[-1]["best_return"] == history[-1]["eval_return_mean"]


@pytest.mark.slow
def test_ppo_learns_cartpole():
    result, _ = train("ppo", {"scenarios": {"num_eval": 16}})
    final = result.history[-1]
    assert final["eval_return_mean"] >= 475, final
    assert final["env_steps"] <= 100_000


def test_the_ppo_family_runs_each_config_by_its_variant():
    from rlpipe.rl import algorithm
    from rlpipe.rl.envs import env_spec
    from rlpipe.rl.ppo.algorithm import METRICS, PPOAlgorithm
    from rlpipe.rl.ppo.imitation import IMITATION_METRICS, ImitationPPOAlgorithm
    from rlpipe.rl.ppo.plugin import variant, variant_of_meta
    from rlpipe.rl.ppo.recurrent import RecurrentPPOAlgorithm
    from tests.test_imitation import TINY_IMITATION
    from tests.test_recurrent import RNN_PPO

    plain, rnn, imitating = (algorithm.load_config("ppo", raw, 2) for raw in (TINY_PPO, RNN_PPO, TINY_IMITATION))
    assert type(variant(plain)) is PPOAlgorithm
    assert type(variant(rnn)) is RecurrentPPOAlgorithm and type(variant(imitating)) is ImitationPPOAlgorithm
    ppo = algorithm.get("ppo")
    assert ppo.metrics_of(plain) == METRICS and ppo.metrics_of(rnn) == METRICS
    assert ppo.metrics_of(imitating) == METRICS + IMITATION_METRICS
    # one name for the family: a bundle of any variant is a "ppo" one, rebuilt by the variant its meta describes
    metas = [ppo.policy_meta(config, env_spec(config.env)) for config in (plain, rnn, imitating)]
    assert [meta["algorithm"] for meta in metas] == ["ppo"] * 3
    assert [type(variant_of_meta(meta)) for meta in metas] == [PPOAlgorithm, RecurrentPPOAlgorithm, PPOAlgorithm]
    assert metas[1]["policy_state_size"] == 2 * RNN_PPO["network"]["recurrent"]["hidden_size"]  # an LSTM's (h, c)
