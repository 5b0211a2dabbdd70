import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl.acting import Transition
from rlpipe.rl.buffer import init_buffer, insert, sample


def batch(start, n):
    """Transitions whose reward is their global index, so we can see where each one lands."""
    idx = jnp.arange(start, start + n, dtype=jnp.float32)
    return Transition(obs=jnp.stack([idx, idx], -1), action=idx[:, None], reward=idx, discount=jnp.ones(n),
                      next_obs=jnp.stack([idx, idx], -1) + 1)


def test_ring_wraps_around_and_overwrites_oldest():
    buf = init_buffer(capacity=5, obs_dim=2, action_dim=1)
    buf = insert(buf, batch(0, 3))
    assert int(buf.size) == 3 and int(buf.position) == 3
    buf = insert(buf, batch(3, 4))  # 3, 4 fill the end; 5, 6 wrap into slots 0, 1
    assert int(buf.size) == 5 and int(buf.position) == 2
    np.testing.assert_array_equal(buf.data.reward, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.data.next_obs[:, 0], [6, 7, 3, 4, 5])
    buf = insert(buf, batch(7, 5))  # a full lap
    np.testing.assert_array_equal(buf.data.reward, [10, 11, 7, 8, 9])
    assert int(buf.size) == 5 and int(buf.position) == 2


def test_sampling_draws_only_filled_slots():
    buf = insert(init_buffer(capacity=100, obs_dim=2, action_dim=1), batch(1, 7))
    drawn = sample(buf, jax.random.PRNGKey(0), 4096)
    values = set(np.asarray(drawn.reward).tolist())
    assert values == set(range(1, 8))  # never an empty (zero) slot, and every filled one is reachable
    np.testing.assert_array_equal(drawn.next_obs[:, 0], drawn.reward + 1)  # fields stay aligned


def test_insert_jits_and_keeps_dtypes():
    buf = init_buffer(capacity=8, obs_dim=2, action_dim=1)
    buf = jax.jit(insert)(buf, batch(0, 3))
    assert buf.data.obs.dtype == jnp.float32 and buf.position.dtype == jnp.int32


def test_redistribute_two_full_shards_into_one_keeps_time_order():
    from rlpipe.rl.buffer import redistribute

    # two ring shards of 4, both full, next write at slot 1: the oldest entry of each is at slot 1
    values = np.array([10, 11, 12, 13, 20, 21, 22, 23], np.float32)  # shard 0: 10..13, shard 1: 20..23
    out = redistribute({"data": {"reward": values}, "position": np.int32(1), "size": np.int32(4)}, 2, 1)
    np.testing.assert_array_equal(out["data"]["reward"], [11, 21, 12, 22, 13, 23, 10, 20])
    assert int(out["position"]) == 0 and int(out["size"]) == 8


def test_redistribute_one_partly_filled_shard_into_two_drops_the_odd_oldest():
    from rlpipe.rl.buffer import redistribute

    values = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [9, 9], [9, 9], [9, 9]], np.float32)  # 5 filled
    out = redistribute({"data": {"obs": values}, "position": np.int32(5), "size": np.int32(5)}, 1, 2)
    obs = out["data"]["obs"]
    np.testing.assert_array_equal(obs[:2], [[1, 1], [3, 3]])  # new shard 0 (slots 0..3): oldest first
    np.testing.assert_array_equal(obs[4:6], [[2, 2], [4, 4]])  # new shard 1 (slots 4..7)
    assert int(out["position"]) == 2 and int(out["size"]) == 2
