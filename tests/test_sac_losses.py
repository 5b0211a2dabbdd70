import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from rlpipe.rl.sac.losses import actor_loss, critic_loss, critic_target, temperature_loss
from rlpipe.rl.sac.networks import sample_tanh_gaussian, tanh_gaussian_log_prob


def test_critic_target_by_hand():
    reward = jnp.array([1.0, -2.0])
    discount = jnp.array([1.0, 0.0])  # second transition terminated: no bootstrap
    next_q = jnp.array([[3.0, 5.0], [4.0, 1.0]])  # critic 1 row, critic 2 row
    next_log_prob = jnp.array([-0.5, 0.7])
    # sample 0: 1 + 0.9 * 1 * (min(3, 4) - 0.2 * -0.5) = 1 + 0.9 * 3.1 = 3.79 ; sample 1: -2
    y = critic_target(reward, discount, next_q, next_log_prob, alpha=jnp.float32(0.2), gamma=0.9)
    np.testing.assert_allclose(y, [3.79, -2.0], rtol=1e-6)


def test_critic_loss_by_hand():
    q = jnp.array([[1.0, 2.0], [0.0, 4.0]])
    target = jnp.array([2.0, 2.0])
    # critic 1: mean((-1)^2, 0^2) = 0.5 ; critic 2: mean((-2)^2, 2^2) = 4 ; 0.5 * (0.5 + 4) = 2.25
    assert float(critic_loss(q, target)) == pytest.approx(2.25)
    # the target is a constant: no gradient flows into it
    g = jax.grad(lambda t: critic_loss(q, t))(target)
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_actor_loss_by_hand():
    log_prob = jnp.array([-1.0, 0.5])
    q = jnp.array([[2.0, -1.0], [3.0, -4.0]])
    # mean(0.1 * -1 - 2, 0.1 * 0.5 - (-4)) = mean(-2.1, 4.05) = 0.975
    assert float(actor_loss(log_prob, q, jnp.float32(0.1))) == pytest.approx(0.975)


def test_temperature_loss_by_hand_and_gradient_sign():
    log_alpha = jnp.log(jnp.float32(0.5))
    log_prob = jnp.array([-0.2, 0.4])  # entropy 0.1 vs target -(-1) = ... target_entropy -1
    # mean(-0.5 * (-0.2 - 1), -0.5 * (0.4 - 1)) = mean(0.6, 0.3) = 0.45
    assert float(temperature_loss(log_alpha, log_prob, -1.0)) == pytest.approx(0.45)
    # entropy (-mean log_prob = -0.1) below target (2.0): gradient descent must raise alpha
    grad = jax.grad(temperature_loss)(log_alpha, log_prob, 2.0)
    assert float(grad) < 0


@pytest.mark.parametrize("mean,log_std", [(0.0, 0.0), (0.7, -1.0), (-1.5, 0.5)])
def test_tanh_gaussian_log_prob_matches_numerical_density(mean, log_std):
    """Density of Y = tanh(U), U ~ N(mean, std), by numerically differentiating its CDF."""
    std = math.exp(log_std)
    for y in (-0.95, -0.3, 0.0, 0.42, 0.9):
        cdf = lambda v: norm.cdf((np.arctanh(v) - mean) / std)  # noqa: E731
        h = 1e-6
        density = (cdf(y + h) - cdf(y - h)) / (2 * h)
        u = jnp.array([[np.arctanh(y)]], jnp.float32)
        ours = tanh_gaussian_log_prob(u, jnp.array([[mean]]), jnp.array([[log_std]]))
        assert float(ours[0]) == pytest.approx(math.log(density), abs=2e-4)


def test_tanh_gaussian_log_prob_is_finite_where_tanh_saturates():
    u = jnp.array([[30.0, -30.0]])
    lp = tanh_gaussian_log_prob(u, jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    assert np.isfinite(np.asarray(lp)).all()


def test_sample_tanh_gaussian_sums_over_dims_and_stays_in_bounds():
    mean, log_std = jnp.zeros((1000, 2)), jnp.full((1000, 2), 1.0)
    action, log_prob = sample_tanh_gaussian(mean, log_std, jax.random.PRNGKey(1))
    assert action.shape == (1000, 2) and log_prob.shape == (1000,)
    assert float(jnp.max(jnp.abs(action))) <= 1.0


def test_network_init_torch_uniform_is_pytorch_linears_default_and_travels_in_the_meta():
    """network.init: torch_uniform starts every kernel and bias of actor and critics as PyTorch's nn.Linear does,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the default stays flax's (biases 0); the policy meta carries the choice."""
    import jax
    import numpy as np

    from rlpipe.rl.algorithm import load_config
    from rlpipe.rl.envs import make_env
    from rlpipe.rl.sac.algorithm import SAC, SACNetworks

    spec = make_env("Pendulum-v1")  # obs 3, action 1
    raw = {"network": {"hidden_sizes": [256, 256], "init": "torch_uniform"}}
    cfg = load_config("sac", raw, 1)
    state = SAC.init_training_state(cfg, spec, jax.random.PRNGKey(0))
    fan_ins = {"Dense_0": 3, "Dense_1": 256, "Dense_2": 256}
    for dense, fan_in in fan_ins.items():
        for leaf in ("kernel", "bias"):
            x = np.asarray(state.actor_params["params"]["MLP_0"][dense][leaf])
            bound = 1.0 / np.sqrt(fan_in)
            assert np.all(np.abs(x) <= bound) and np.any(x), (dense, leaf)
            if x.size >= 256:  # uniform on [-b, b]: reaches near b, std b / sqrt(3)
                assert np.abs(x).max() > 0.95 * bound, (dense, leaf)
                assert abs(x.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3), (dense, leaf)
    q1 = state.critic_params["params"]["q1"]["Dense_0"]["kernel"]  # critic input: obs and action, fan_in 4
    assert np.abs(np.asarray(q1)).max() <= 0.5 and np.abs(np.asarray(q1)).max() > 0.45

    meta = SAC.policy_meta(cfg, spec)
    assert meta["init"] == "torch_uniform"
    rebuilt = SACNetworks.from_meta(meta).actor.init(jax.random.PRNGKey(1), np.zeros((1, 3), np.float32))
    built = SACNetworks.build(cfg, spec).actor.init(jax.random.PRNGKey(1), np.zeros((1, 3), np.float32))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), rebuilt, built))

    default = load_config("sac", {"network": {"hidden_sizes": [256, 256]}}, 1)
    assert "init" not in SAC.policy_meta(default, spec)
    d = SAC.init_training_state(default, spec, jax.random.PRNGKey(0)).actor_params["params"]["MLP_0"]
    assert not np.any(np.asarray(d["Dense_1"]["bias"]))  # flax's: biases start at 0
    assert np.asarray(d["Dense_1"]["kernel"]).std() > 1.5 / np.sqrt(3 * 256)  # N(0, 1/fan_in), wider than U's
