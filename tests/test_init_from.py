"""What ``train.init_from`` transfers, part by part, against the stored agent it starts from: SAC's parameters and
(with ``init_from_optimizer``) its optimizer states, SAC's replay buffer (``init_from_buffer``), PPO's parameters,
observation statistics and optimizer state; everything else starts fresh."""

import copy

import numpy as np
import pytest
from flax import serialization, traverse_util

from rlpipe.datasets.checkpoint_store_dataset import CheckpointStore
from rlpipe.pipelines.training import generate_scenarios, init_agent, prefill_buffer
from rlpipe.rl import algorithm, mesh
from rlpipe.rl.checkpoint import save_checkpoint
from rlpipe.rl.config import to_dict
from tests.conftest import TINY_SAC
from tests.support import setup, train
from tests.test_ppo import TINY_PPO

VERSION = "2026-01-01T00.00.00.000Z"
pytestmark = pytest.mark.xdist_group("init_from")  # one worker: the stored SAC agent below is trained once


def stored_agent(tmp_path, algo: str, raw: dict) -> CheckpointStore:
    """A trained agent written as the pipeline stores one (``<algo>.agent/<version>/agent``)."""
    result, cfg = train(algo, raw, evaluate=False)
    meta = {"algorithm": algo, "config": to_dict(cfg), "num_devices": mesh.device_count(), "num_processes": 1,
            "env_steps": int(result.history[-1]["env_steps"])}
    save_checkpoint(tmp_path / "agent" / VERSION / "agent", mesh.host_copy(result.state), meta)
    return CheckpointStore(tmp_path / "agent")


@pytest.fixture(scope="module")
def stored_sac(tmp_path_factory) -> CheckpointStore:
    """TINY_SAC trained once and stored, for every test here that only reads that agent."""
    return stored_agent(tmp_path_factory.mktemp("stored-sac"), "sac", copy.deepcopy(TINY_SAC))


def leaves(tree) -> dict:
    tree = serialization.to_state_dict(tree)
    flat = traverse_util.flatten_dict(tree, sep="/") if isinstance(tree, dict) and tree else {"": tree}
    return {k: np.asarray(v) for k, v in flat.items()}


def assert_same(a, b, field):
    a, b = leaves(a), leaves(b)
    assert a.keys() == b.keys(), field
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{field}/{k}")


def differs(a, b) -> bool:
    a, b = leaves(a), leaves(b)
    return any(not np.array_equal(a[k], b[k]) for k in a)


def child_of(algo: str, raw: dict, store: CheckpointStore, optimizer: bool):
    child_raw = copy.deepcopy(raw)
    child_raw["train"].update(init_from=VERSION, init_from_optimizer=optimizer)
    _, cfg, *_ = setup(algo, child_raw)
    training, lineage = init_agent(cfg, store)
    fresh, _ = init_agent(setup(algo, raw)[1], store)
    return serialization.to_state_dict(training), serialization.to_state_dict(fresh), lineage, cfg


@pytest.mark.parametrize("algo,raw", [("sac", TINY_SAC),
                                      ("ppo", {**TINY_PPO, "train": {**TINY_PPO["train"],
                                                                     "normalize_observations": True}})],
                         ids=["sac", "ppo"])
def test_init_from_takes_parameters_and_with_init_from_optimizer_the_optimizer_states(request, tmp_path, algo, raw):
    store = request.getfixturevalue("stored_sac") if algo == "sac" else stored_agent(tmp_path, algo, raw)
    stored, _ = store.open(VERSION, "k")
    parent = stored.part("training")
    plugin = algorithm.get(algo)
    params, optimizer = plugin.inheritable["params"], plugin.inheritable["optimizer"]
    if algo == "ppo":  # the observation statistics travel with the parameters
        assert "obs_norm" in params and float(np.asarray(parent["obs_norm"]["count"]).max()) > 0
    for with_optimizer in (False, True):
        child, fresh, lineage, _ = child_of(algo, raw, store, with_optimizer)
        assert lineage["parent_version"] == VERSION and lineage["optimizer"] is with_optimizer
        for field in params + optimizer:
            assert differs(parent[field], fresh[field]), field  # training changed it: the test can tell
            inherited = field in params or with_optimizer
            assert_same(child[field], parent[field] if inherited else fresh[field], field)
        for field in set(child) - set(params) - set(optimizer):  # counters and the like: a new run
            assert_same(child[field], fresh[field], field)


def test_init_from_buffer_fills_the_new_buffer_with_the_stored_transitions_oldest_first(stored_sac):
    raw = copy.deepcopy(TINY_SAC)  # 320 env steps into a buffer of 512 over 2 devices: nothing overwritten
    store = stored_sac
    stored, _ = store.open(VERSION, "k")
    buffer = stored.part("device")["buffer"]
    held = int(np.asarray(buffer["size"]).max())
    assert mesh.device_count() == 2 and held == 320 // 2
    child_raw = copy.deepcopy(raw)
    child_raw["train"].update(init_from=VERSION, init_from_buffer=True)
    _, cfg, *_ = setup("sac", child_raw)
    _, lineage = init_agent(cfg, store)
    transitions = prefill_buffer(cfg, generate_scenarios(cfg)[0], store, lineage)
    half = 512 // 2
    for name, values in buffer["data"].items():  # step k of device 0, step k of device 1, step k + 1 of device 0 ...
        values = np.asarray(values)
        by_hand = np.stack([values[:held], values[half:half + held]], axis=1).reshape((2 * held,) + values.shape[1:])
        np.testing.assert_array_equal(transitions[name], by_hand, err_msg=name)
    assert np.abs(transitions["obs"]).sum(axis=1).min() > 0  # real transitions, not empty slots

