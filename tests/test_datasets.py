import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from rlpipe.datasets import ArrayTreeDataset, CheckpointDataset
from rlpipe.rl.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint


def test_array_tree_round_trip_and_versions(tmp_path):
    arrays = {"obs": np.arange(12, dtype=np.float32).reshape(4, 3), "reward": np.ones(4, np.float32)}
    first = ArrayTreeDataset(str(tmp_path / "buf.npz"), version=Version(None, "2026-01-01T00.00.00.000Z"))
    first.save(arrays)
    second = ArrayTreeDataset(str(tmp_path / "buf.npz"), version=Version(None, "2026-01-02T00.00.00.000Z"))
    second.save({k: v * 2 for k, v in arrays.items()})
    latest = ArrayTreeDataset(str(tmp_path / "buf.npz"), version=Version(None, None)).load()
    np.testing.assert_array_equal(latest["obs"], arrays["obs"] * 2)
    old = ArrayTreeDataset(str(tmp_path / "buf.npz"), version=Version("2026-01-01T00.00.00.000Z", None)).load()
    np.testing.assert_array_equal(old["obs"], arrays["obs"])


def test_array_tree_refuses_objects(tmp_path):
    ds = ArrayTreeDataset(str(tmp_path / "x.npz"))
    with pytest.raises(DatasetError, match="dtype object"):
        ds.save({"bad": np.array([{"a": 1}], dtype=object)})


def test_array_tree_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object))  # a pickled object inside
    with pytest.raises(DatasetError):
        ArrayTreeDataset(str(path)).load()


def test_checkpoint_round_trip_with_meta(tmp_path):
    state = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "step": np.int32(7),
             "key": np.array([1, 2], np.uint32)}
    ds = CheckpointDataset(str(tmp_path / "agent"), version=Version(None, "2026-01-01T00.00.00.000Z"))
    ds.save({"state": state, "meta": {"algorithm": "sac", "env_steps": 100}})
    loaded = CheckpointDataset(str(tmp_path / "agent"), version=Version(None, None)).load()
    np.testing.assert_array_equal(loaded["state"]["params"]["w"], state["params"]["w"])
    assert loaded["state"]["key"].dtype == np.uint32
    assert loaded["meta"]["env_steps"] == 100 and loaded["meta"]["format_version"] == 3


def test_checkpoint_never_overwrites_and_manager_keeps_newest(tmp_path):
    save_checkpoint(tmp_path / "c", {"x": np.zeros(2)}, {})
    with pytest.raises(FileExistsError):
        save_checkpoint(tmp_path / "c", {"x": np.ones(2)}, {})
    manager = CheckpointManager(tmp_path / "run", keep=2)
    for step in (10, 20, 30):
        manager.save(step, {"x": np.full(2, step)}, {"algorithm": "sac"})
    assert manager.steps() == [20, 30]
    state, meta = load_checkpoint(manager.path(30))
    assert meta["env_steps"] == 30 and state["x"][0] == 30


def test_incomplete_checkpoint_is_not_loaded(tmp_path):
    (tmp_path / "half" / "state").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path / "half")


def test_temporary_files_stay_in_pytests_area(tmp_path, tmp_path_factory):
    """The suite's temp folder (tests/conftest.py) is inside pytest's area, here and in a child process: a
    run-version lock taken before a project has data/ lands there, not in the machine's /tmp."""
    from rlpipe.versions import lock_path

    here = Path(tempfile.gettempdir())
    assert here.is_relative_to(tmp_path_factory.getbasetemp()) and os.environ["TMPDIR"] == str(here)
    assert lock_path(tmp_path / "project" / "data").parent == here
    child = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                           capture_output=True, text=True, check=True, timeout=60)
    assert child.stdout.strip() == str(here)
