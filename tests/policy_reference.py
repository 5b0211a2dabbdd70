"""The SAC policy's actions computed independently of rlpipe's policy code, for the tests that check a served
policy against what it must do."""

import numpy as np

from rlpipe.rl.sac.networks import Actor


def actions_by_hand(bundle: dict, obs: np.ndarray) -> np.ndarray:
    """What the SAC policy must do, computed here rather than by rlpipe's policy code: the stored parameters
    applied to the actor network directly, then tanh of the Gaussian's mean scaled from [-1, 1] to the bounds."""
    meta = bundle["meta"]
    assert meta["algorithm"] == "sac" and meta["hidden_sizes"] == [16, 16] and meta["activation"] == "relu"
    actor = Actor(hidden_sizes=tuple(meta["hidden_sizes"]), action_dim=meta["action_dim"])
    out = np.asarray(actor.apply(bundle["params"], np.asarray(obs, np.float32))[0], np.float64)  # the mean
    low, high = np.asarray(meta["action_low"], np.float64), np.asarray(meta["action_high"], np.float64)
    assert low.tolist() == [-2.0] and high.tolist() == [2.0]  # Pendulum's torque
    return low + (np.tanh(out) + 1.0) / 2.0 * (high - low)
