"""``env.vector: async``: a Gymnasium env's training copies stepped in worker processes train exactly as stepping
them in this process does (bit for bit, but for the envs' handles), the workers really are other processes, and
none is left behind when the run ends. (Evaluation always steps its envs in this process.)"""

import multiprocessing
import os

import jax
import numpy as np
import pytest

from rlpipe.rl import mesh
from tests.conftest import TINY_SAC
from tests.support import train


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


@pytest.mark.slow
def test_async_host_envs_train_bitwise_as_sync_ones_in_worker_processes(tmp_path, monkeypatch):
    before = _children()
    states, stepped_in = {}, {}
    for vector in ("sync", "async"):
        folder = tmp_path / vector
        folder.mkdir()
        monkeypatch.setenv("RLPIPE_TEST_PID_DIR", str(folder))  # the workers inherit it
        raw = {**TINY_SAC, "env": {"id": "gymnasium:tests.vector_envs:PidPendulum-v0", "vector": vector,
                                   "workers": 2}}
        result, _ = train("sac", raw, evaluate=False)
        # everything but the envs' handles (env_state of a host env: which table of this process holds the env,
        # numbered in the order the device threads opened them): parameters, optimizer, buffer, observations, keys
        leaves = jax.tree_util.tree_leaves_with_path(mesh.host_copy(result.state))
        handles = [np.asarray(x) for path, x in leaves if "env_state" in jax.tree_util.keystr(path)]
        assert [h.shape for h in handles] == [(4, 2)]
        states[vector] = [np.asarray(x) for path, x in leaves if "env_state" not in jax.tree_util.keystr(path)]
        stepped_in[vector] = {int(p.name) for p in folder.iterdir()}
    assert stepped_in["sync"] == {os.getpid()}
    workers = stepped_in["async"] - {os.getpid()}  # 4 envs over 2 devices, 2 worker processes per device
    assert len(workers) >= 4, stepped_in
    assert not workers & _children()  # every worker is gone
    assert _children() <= before
    assert len(states["sync"]) == len(states["async"])
    for a, b in zip(states["sync"], states["async"]):
        np.testing.assert_array_equal(a, b)
